"""Store transactions on real SQLite and PostgreSQL: ``tx`` and ``run_write`` side by side."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from intentd.config import load_settings
from intentd.store import Store
from intentd.store.db import PING_WHEN_IDLE_FOR, is_transient, native_statement, sqlite_synchronous
from intentd.store.migrate import upgrade_async
from intentd.store.schema import sessions


def _session(session_id: str) -> dict:
    now = time.time()
    return {"id": session_id, "tenant_id": "t", "token_hash": session_id, "metadata": {}, "context": {},
            "created_at": now, "expires_at": now + 60}


async def test_transactions_of_both_kinds_interleave_without_losing_a_write(database_url) -> None:
    await upgrade_async(database_url)
    store = Store(database_url)
    try:
        async def through_tx(i: int) -> None:
            async with store.tx() as conn:
                await conn.execute(sa.insert(sessions).values(**_session(f"tx-{i}")))
                await asyncio.sleep(0)  # another task's run_write queues meanwhile

        async def through_run_write(i: int) -> None:
            await store.run_write(lambda conn: conn.execute(sa.insert(sessions).values(**_session(f"rw-{i}"))))

        await asyncio.gather(*(through_tx(i) if i % 2 else through_run_write(i) for i in range(60)))
        ids = await store.run_read(lambda conn: set(conn.execute(sa.select(sessions.c.id)).scalars()))
        assert ids == {f"tx-{i}" for i in range(1, 60, 2)} | {f"rw-{i}" for i in range(0, 60, 2)}
    finally:
        await store.close()


async def test_run_write_commits_on_return_and_rolls_back_on_error(database_url) -> None:
    await upgrade_async(database_url)
    store = Store(database_url)
    try:
        def insert_then_fail(conn: sa.Connection) -> None:
            conn.execute(sa.insert(sessions).values(**_session("rolled-back")))
            raise LookupError("refused half-way")

        with pytest.raises(LookupError):
            await store.run_write(insert_then_fail)
        assert await store.run_write(
            lambda conn: conn.execute(sa.insert(sessions).values(**_session("kept")).returning(sessions.c.id)).scalar_one()
        ) == "kept"
        ids = await store.run_read(lambda conn: set(conn.execute(sa.select(sessions.c.id)).scalars()))
        assert ids == {"kept"}
    finally:
        await store.close()


_INSERT_SESSION = native_statement(
    "INSERT INTO sessions (id, tenant_id, token_hash, metadata, context, created_at, expires_at)"
    " VALUES (:id, 't', :id, CAST('{}' AS jsonb), CAST('{}' AS jsonb), 0, 60) RETURNING id"
)


async def test_a_native_statement_fails_as_sqlalchemy_would_and_a_lost_connection_is_replaced(
    fresh_postgres_url,
) -> None:
    url = load_settings({"INTENTD_DATABASE_URL": fresh_postgres_url()}).app_database_url
    await upgrade_async(url)
    store = Store(url, pool_size=1)
    try:
        assert [row["id"] for row in await store.fetch_native(_INSERT_SESSION, {"id": "s1"})] == ["s1"]
        with pytest.raises(sa.exc.IntegrityError) as refused:
            await store.fetch_native(_INSERT_SESSION, {"id": "s1"})
        assert not is_transient(refused.value), "a duplicate is the caller's to handle, not to retry"

        # The pooled connection dies (a PostgreSQL restart, a proxy's timeout), used
        # at once or once the server's notice of it has arrived.
        for n, notice_first in enumerate((False, True)):
            pid = (await store.fetch_native(native_statement("SELECT pg_backend_pid() AS pid"), {}))[0]["pid"]
            killer = Store(url)
            try:
                await killer.fetch_native(native_statement("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            finally:
                await killer.close()
            if notice_first:
                await asyncio.sleep(0.3)
            with pytest.raises(sa.exc.OperationalError) as lost:
                await store.fetch_native(_INSERT_SESSION, {"id": f"s{n + 2}"})
            assert lost.value.connection_invalidated and is_transient(lost.value)
            assert [row["id"] for row in await store.fetch_native(_INSERT_SESSION, {"id": f"s{n + 2}"})] == [f"s{n + 2}"]
    finally:
        await store.close()


async def test_an_idle_connection_is_checked_with_one_statement_and_replaced_when_dead(fresh_postgres_url) -> None:
    url = load_settings({"INTENTD_DATABASE_URL": fresh_postgres_url()}).app_database_url
    store = Store(url, pool_size=1)
    select_pid = native_statement("SELECT pg_backend_pid() AS pid")
    try:
        sent: list[str] = []
        async with store.engine.connect() as conn:
            (await conn.get_raw_connection()).driver_connection.add_query_logger(lambda query: sent.append(query.query))
        await asyncio.sleep(PING_WHEN_IDLE_FOR + 0.1)
        first = (await store.fetch_native(select_pid, {}))[0]["pid"]
        assert (await store.fetch_native(select_pid, {}))[0]["pid"] == first
        await asyncio.sleep(0.01)  # asyncpg calls its query loggers soon after, not during
        # One check before the first, none before the second (it was in use a
        # moment ago); no transaction around either, nothing sent on their return.
        assert sent == ["SELECT 1", select_pid.sql, select_pid.sql]

        killer = Store(url)
        try:
            await killer.fetch_native(native_statement("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        finally:
            await killer.close()
        await asyncio.sleep(PING_WHEN_IDLE_FOR + 0.1)
        assert (await store.fetch_native(select_pid, {}))[0]["pid"] != first, "checked, found dead, replaced"
    finally:
        await store.close()


async def test_a_native_sqlite_write_is_one_transaction_and_fails_as_sqlalchemy_would(tmp_path) -> None:
    url = load_settings({}, data_dir=tmp_path).app_database_url
    await upgrade_async(url)
    store = Store(url)
    insert = ("INSERT INTO sessions (id, tenant_id, token_hash, metadata, context, created_at, expires_at)"
              " VALUES (?, 't', ?, '{}', '{}', 0, 60)")
    try:
        def insert_then_fail(conn) -> None:
            conn.execute(insert, ("rolled-back", "rolled-back"))
            raise LookupError("refused half-way")

        with pytest.raises(LookupError):
            await store.write_native(insert_then_fail)
        await store.write_native(lambda conn: conn.execute(insert, ("kept", "kept")))
        with pytest.raises(sa.exc.IntegrityError) as refused:  # and the first insert of the two is undone
            await store.write_native(
                lambda conn: [conn.execute(insert, row) for row in (("new", "new"), ("kept-2", "kept"))])
        assert not is_transient(refused.value)
        with pytest.raises(sa.exc.OperationalError):
            await store.write_native(lambda conn: conn.execute("INSERT INTO no_such_table VALUES (1)"))
        ids = await store.run_read(lambda conn: set(conn.execute(sa.select(sessions.c.id)).scalars()))
        assert ids == {"kept"}
    finally:
        await store.close()


@pytest.mark.parametrize(("level", "pragma"), [(None, 1), ("full", 2)])
async def test_sqlites_synchronous_level_comes_from_the_settings(tmp_path, level, pragma) -> None:
    settings = load_settings({"INTENTD_SQLITE_SYNCHRONOUS": level} if level else {}, data_dir=tmp_path)
    await upgrade_async(settings.app_database_url)
    store = Store.from_settings(settings)
    try:
        read = "PRAGMA synchronous"
        assert await store.run_read(lambda conn: conn.exec_driver_sql(read).scalar()) == pragma
        assert await store.write_native(lambda conn: conn.execute(read).fetchone()[0]) == pragma
        async with store.tx() as conn:
            assert (await conn.exec_driver_sql(read)).scalar() == pragma
    finally:
        await store.close()


def test_an_engine_made_elsewhere_gets_the_level_on_its_connections_open_already(tmp_path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'other.sqlite'}", pool_size=2)
    try:
        with engine.connect():  # opened before, back in the pool after
            pass
        sqlite_synchronous(engine, "normal")
        with engine.connect() as first, engine.connect() as second:
            assert [c.exec_driver_sql("PRAGMA synchronous").scalar() for c in (first, second)] == [1, 1]
        with pytest.raises(ValueError):
            sqlite_synchronous(engine, "off; DROP TABLE x")
    finally:
        engine.dispose()
