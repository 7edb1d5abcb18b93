"""`intentd db upgrade` migrates a PostgreSQL database; replicas started without it refuse to run on an empty one."""

from __future__ import annotations

import secrets

import psycopg
from harness import IntentdProcess, IntentdStartError, run_intentd

TABLES = {"users", "sessions", "executions", "events", "audit_log", "refresh_tokens", "revoked_tokens", "runtime_replicas"}


def tables(url: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_db_upgrade_creates_the_schema_and_is_idempotent(fresh_postgres_url, tmp_path) -> None:
    url = fresh_postgres_url()
    env = {"INTENTD_DATABASE_URL": url}
    first = run_intentd(["db", "upgrade", "--data-dir", str(tmp_path)], env=env)
    assert first.returncode == 0, first.stderr
    assert TABLES <= tables(url)
    again = run_intentd(["db", "upgrade", "--data-dir", str(tmp_path)], env=env)
    assert again.returncode == 0, again.stderr
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "0001"


def test_auto_migrate_at_start_and_refusal_without_it(fresh_postgres_url, redis_url, tmp_path) -> None:
    env = {
        "INTENTD_DATABASE_URL": fresh_postgres_url(),
        "INTENTD_REDIS_URL": redis_url,
        "INTENTD_SECRET_KEY": secrets.token_urlsafe(32),
        "INTENTD_SERVICE_TOKEN": secrets.token_urlsafe(32),
    }
    unmigrated = IntentdProcess(
        ["serve", "runtime", "--data-dir", str(tmp_path / "a")],
        env={**env, "INTENTD_AUTO_MIGRATE": "false"}, cwd=tmp_path, log_path=tmp_path / "a.log",
    )
    try:
        unmigrated.start(timeout=30)
        raise AssertionError("a runtime started on an unmigrated database")
    except IntentdStartError as refused:
        assert "intentd db upgrade" in str(refused)
    finally:
        unmigrated.stop()
    migrated = IntentdProcess(
        ["serve", "runtime", "--data-dir", str(tmp_path / "b")],
        env={**env, "INTENTD_AUTO_MIGRATE": "true"}, cwd=tmp_path, log_path=tmp_path / "b.log",
    ).start(timeout=60)
    migrated.stop()
    assert TABLES <= tables(env["INTENTD_DATABASE_URL"])
