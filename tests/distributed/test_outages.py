"""Dependency outages: nothing accepted is lost, new work is refused clearly, service resumes."""

from __future__ import annotations

import asyncio
import secrets
import time

import httpx
import pytest
import sqlalchemy as sa
from harness import IntentdProcess
from services import TempPostgres

from intentd.config import load_settings
from intentd.store import Store
from intentd.store.db import PING_WHEN_IDLE_FOR


@pytest.fixture
def temp_postgres():
    server = TempPostgres()
    server.start()
    yield server
    server.remove()


def _start_runtime(tmp_path, postgres: TempPostgres, redis_url: str) -> tuple[IntentdProcess, httpx.Client]:
    """`intentd serve runtime` on ``postgres``, and a client with its service token."""
    token = secrets.token_urlsafe(32)
    runtime = IntentdProcess(
        ["serve", "runtime", "--data-dir", str(tmp_path / "rt")],
        env={
            "INTENTD_DATABASE_URL": postgres.url,
            "INTENTD_REDIS_URL": redis_url,
            "INTENTD_SECRET_KEY": secrets.token_urlsafe(32),
            "INTENTD_SERVICE_TOKEN": token,
            "INTENTD_EXECUTOR_ID": "runtime-under-test",
        },
        cwd=tmp_path,
        log_path=tmp_path / "runtime.log",
    ).start(timeout=60)
    return runtime, httpx.Client(base_url=runtime.url, headers={"Authorization": f"Bearer {token}"}, timeout=15)


def test_postgres_outage_refuses_new_work_with_503_and_loses_nothing(tmp_path, temp_postgres, redis_url) -> None:
    runtime, api = _start_runtime(tmp_path, temp_postgres, redis_url)
    try:
        accepted = api.post("/api/runtime/executions", json={"intent": "wait", "params": {"seconds": 4}, "tenant_id": "t"})
        assert accepted.status_code == 202, accepted.text
        execution_id = accepted.json()["execution_id"]
        time.sleep(1.5)

        temp_postgres.stop()
        refused = api.post("/api/runtime/executions", json={"intent": "echo", "params": {}, "tenant_id": "t"})
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "unavailable"
        # A batch: the database's fault is each valid item's answer; the others keep theirs.
        batch = api.post("/api/runtime/executions/batch", json={"items": [
            {"intent": "echo", "params": {}, "tenant_id": "t"}, {"intent": "no.such.intent", "tenant_id": "t"}]})
        assert batch.status_code == 200, batch.text
        assert [(a["status"], a["body"]["code"]) for a in batch.json()["items"]] == [
            (503, "unavailable"), (404, "unknown_intent")]
        not_ready = api.get("/ready")
        assert not_ready.status_code == 503
        assert not_ready.json()["code"] == "unavailable"
        time.sleep(3)  # the execution is due during the outage

        temp_postgres.start()
        deadline = time.monotonic() + 30
        while True:
            response = api.get(f"/api/runtime/executions/{execution_id}")
            if response.status_code == 200 and response.json()["status"] == "completed":
                break
            assert time.monotonic() < deadline, f"not completed after the outage: {response.text}\n{runtime.log_tail()}"
            time.sleep(0.3)
        found = api.get(f"/api/runtime/executions/{execution_id}/events").json()["items"]
        assert [e["n"] for e in found] == list(range(len(found)))
        assert [e["type"] for e in found].count("execution.completed") == 1
        assert api.get("/ready").status_code == 200
        again = api.post("/api/runtime/executions", json={"intent": "echo", "params": {}, "tenant_id": "t"})
        assert again.status_code == 202
        keyed = {"intent": "echo", "params": {"n": 1}, "tenant_id": "t", "idempotency_key": "k"}
        batch = api.post("/api/runtime/executions/batch", json={"items": [
            keyed, keyed, {**keyed, "params": {"n": 2}}]})
        answers = batch.json()["items"]
        assert [a["status"] for a in answers] == [202, 202, 409], answers
        assert [a["body"]["duplicate"] for a in answers[:2]] == [False, True]
        assert answers[0]["body"]["execution_id"] == answers[1]["body"]["execution_id"]
    finally:
        runtime.stop()


def test_runtime_stops_on_sigterm_while_postgres_is_down(tmp_path, temp_postgres, redis_url) -> None:
    runtime, api = _start_runtime(tmp_path, temp_postgres, redis_url)
    try:
        accepted = api.post("/api/runtime/executions", json={"intent": "wait", "params": {"seconds": 1}, "tenant_id": "t"})
        assert accepted.status_code == 202, accepted.text
        execution = f"/api/runtime/executions/{accepted.json()['execution_id']}"
        deadline = time.monotonic() + 10
        while api.get(execution).json()["status"] != "running":
            assert time.monotonic() < deadline, runtime.log_tail()
            time.sleep(0.05)
        temp_postgres.stop()
        time.sleep(2)  # the workflow ends and DBOS retries recording its outcome
        started = time.monotonic()
        code = runtime.terminate(timeout=30)
        assert time.monotonic() - started < 30
        assert code == 0, runtime.log_tail()
    finally:
        runtime.stop()


async def test_the_store_replaces_connections_a_postgres_restart_killed(tmp_path, temp_postgres) -> None:
    settings = load_settings({"INTENTD_DATABASE_URL": temp_postgres.url}, data_dir=tmp_path)
    store = Store(settings.app_database_url, pool_size=2)
    try:
        async with store.read() as conn:
            assert (await conn.execute(sa.text("SELECT 1"))).scalar_one() == 1
        temp_postgres.stop()
        temp_postgres.start()
        # The pooled connection is dead; idle past the window, it is checked and replaced before use.
        await asyncio.sleep(PING_WHEN_IDLE_FOR + 0.1)
        async with store.read() as conn:
            assert (await conn.execute(sa.text("SELECT 1"))).scalar_one() == 1
    finally:
        await store.close()
