"""The event log on real SQLite and PostgreSQL stores: seq assignment, batches, replay dedup, divergence."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa
from store_support import store_with_session

from intentd.bus.memory import MemoryBus
from intentd.store import Store
from intentd.store.events import EventLog, NewEvent, read_execution, read_session
from intentd.store.schema import executions, sessions


async def make_store(url: str) -> Store:
    """A migrated store with session s1 of tenant t, and its running execution e1."""
    store = await store_with_session(url)
    now = time.time()
    async with store.tx() as conn:
        await conn.execute(sa.insert(executions).values(
            id="e1", tenant_id="t", session_id="s1", intent="echo", params={}, params_hash="x",
            status="running", created_at=now))
    return store


async def listening_log(store: Store, bus: MemoryBus) -> tuple[EventLog, list[dict]]:
    """A started event log publishing on ``bus``, and the events the bus carries, as they come."""
    heard: list[dict] = []
    bus.subscribe("events", heard.append)
    log = EventLog(store, bus)
    await log.start()
    return log, heard


async def test_replayed_events_are_recorded_once_and_seq_stays_gapless(database_url) -> None:
    store = await make_store(database_url)
    log, heard = await listening_log(store, MemoryBus())
    try:
        first = [await log.append(NewEvent("execution.progress", {"i": i}, "s1", "e1", n=i)) for i in range(3)]
        replayed = [await log.append(NewEvent("execution.progress", {"i": i}, "s1", "e1", n=i)) for i in range(3)]
        after = await log.append(NewEvent("execution.progress", {"i": 3}, "s1", "e1", n=3))
    finally:
        await log.close()
    assert [e["seq"] for e in first] == [1, 2, 3]
    assert replayed == [None, None, None]
    assert after["seq"] == 4, "a duplicate hands its seq back"
    assert [e["seq"] for e in await read_session(store, "s1")] == [1, 2, 3, 4]
    assert [e["seq"] for e in heard] == [1, 2, 3, 4], "only recorded events are published"
    await store.close()


async def test_a_diverged_replay_never_loses_the_outcome(database_url) -> None:
    store = await make_store(database_url)
    log = EventLog(store, MemoryBus())
    await log.start()
    try:
        await log.append(NewEvent("agent.delta", {"text": "first run"}, "s1", "e1", n=0))
        # The replay took another path and now fails at the same n.
        outcome = await log.append(NewEvent(
            "execution.failed", {"code": "x", "message": "y"}, "s1", "e1", n=0,
            execution_update={"status": "failed", "error_code": "x"}))
        again = await log.append(NewEvent(
            "execution.failed", {"code": "x", "message": "y"}, "s1", "e1", n=0,
            execution_update={"status": "failed", "error_code": "x"}))
    finally:
        await log.close()
    assert outcome is not None and outcome["n"] == 1
    assert again is None, "the outcome is recorded once"
    assert [e["type"] for e in await read_execution(store, "e1")] == ["agent.delta", "execution.failed"]
    async with store.read() as conn:
        assert (await conn.execute(sa.select(executions.c.status))).scalar_one() == "failed"
    await store.close()


async def _add_session(store: Store, session_id: str) -> None:
    now = time.time()
    async with store.tx() as conn:
        await conn.execute(sa.insert(sessions).values(
            id=session_id, tenant_id="t", token_hash=session_id, metadata={}, context={}, created_at=now,
            expires_at=now + 60))


async def test_a_batch_keeps_arrival_order_per_session_and_merges_execution_changes(database_url) -> None:
    setup = await make_store(database_url)
    await _add_session(setup, "s2")
    await setup.close()
    store = Store(database_url)  # connections opened from here on are watched
    statements: list[str] = []

    def watch(dbapi_connection, _record) -> None:  # the hot writes skip SQLAlchemy: the driver's own log
        if store.dialect == "postgresql":
            dbapi_connection.driver_connection.add_query_logger(lambda query: statements.append(query.query))
        else:
            dbapi_connection.set_trace_callback(statements.append)

    sa.event.listen(sa.pool.Pool, "connect", watch)
    log = EventLog(store, MemoryBus())
    await log.start()
    try:
        # Queued before the writer runs: one batch of 40 events over 2 sessions and 1 execution.
        appends = [
            log.append(NewEvent("execution.progress", {"i": i}, "s1", "e1", n=i,
                                execution_update={"progress": i / 20, "progress_message": f"step {i}"}))
            if i % 2 == 0 else log.append(NewEvent("custom", {"i": i}, "s2"))
            for i in range(40)
        ]
        recorded = await asyncio.gather(*appends)
        written = list(statements)
    finally:
        await log.close()
        sa.event.remove(sa.pool.Pool, "connect", watch)
    assert [e["seq"] for e in recorded if e["session_id"] == "s1"] == list(range(1, 21))
    assert [e["seq"] for e in recorded if e["session_id"] == "s2"] == list(range(1, 21))
    assert [e["data"]["i"] for e in await read_session(store, "s2")] == list(range(1, 40, 2))
    async with store.read() as conn:
        row = (await conn.execute(
            sa.select(executions.c.progress, executions.c.progress_message, executions.c.status))).one()
        last = {r.id: r.last_seq for r in await conn.execute(sa.select(sessions.c.id, sessions.c.last_seq))}
    assert (row.progress, row.progress_message) == (38 / 20, "step 38"), "the batch's last change wins"
    assert row.status == "running", "a column no event changed keeps its value"
    assert last == {"s1": 20, "s2": 20}
    if store.dialect == "postgresql":
        # One statement, its own transaction (asyncpg's type lookups aside).
        assert [q for q in written if "events" in q or q.split()[0] in ("BEGIN", "COMMIT")] == [
            q for q in written if "INSERT INTO events" in q and "UPDATE sessions" in q and "UPDATE executions" in q]
        assert len([q for q in written if "INSERT INTO events" in q]) == 1
    else:
        # One transaction, one seq reservation for both sessions, one UPDATE
        # for the execution; the events go in through one executemany.
        writes = [" ".join(q.split()[:3 if q.startswith("INSERT") else 2]) for q in written
                  if q.split()[0] in ("BEGIN", "COMMIT", "INSERT", "UPDATE")]
        assert writes == ["BEGIN IMMEDIATE", "UPDATE sessions"] + ["INSERT INTO events"] * 40 + [
            "UPDATE executions", "COMMIT"], written
    await store.close()


async def test_a_replay_inside_a_batch_keeps_the_new_events_and_a_gapless_seq(database_url) -> None:
    store = await make_store(database_url)
    log = EventLog(store, MemoryBus())
    await log.start()
    try:
        await log.append(NewEvent("execution.progress", {"i": 0}, "s1", "e1", n=0))
        batch = await asyncio.gather(
            log.append(NewEvent("custom", {"i": "a"}, "s1")),
            log.append(NewEvent("execution.progress", {"i": 0}, "s1", "e1", n=0)),  # replayed
            log.append(NewEvent("execution.progress", {"i": 1}, "s1", "e1", n=1)),
        )
    finally:
        await log.close()
    assert batch[1] is None
    assert [e["seq"] for e in batch if e is not None] == [2, 3]
    assert [(e["seq"], e["type"]) for e in await read_session(store, "s1")] == [
        (1, "execution.progress"), (2, "custom"), (3, "execution.progress")]
    await store.close()


async def test_an_outcome_sets_every_column_it_names_and_only_those(database_url) -> None:
    store = await make_store(database_url)
    log = EventLog(store, MemoryBus())
    await log.start()
    try:
        await asyncio.gather(
            log.append(NewEvent("execution.started", {}, "s1", "e1", n=1,
                                execution_update={"status": "running", "started_at": 1.5})),
            log.append(NewEvent("execution.progress", {}, "s1", "e1", n=2,
                                execution_update={"progress": 0.25, "progress_message": "a quarter"})),
            log.append(NewEvent("execution.failed", {}, "s1", "e1", n=3, execution_update={
                "status": "failed", "finished_at": 2.75, "error_code": "boom", "error_message": "it broke"})),
        )
        with pytest.raises(ValueError, match="intent"):
            await log.append(NewEvent("x", {}, "s1", "e1", n=4, execution_update={"intent": "other"}))
    finally:
        await log.close()
    async with store.read() as conn:
        row = (await conn.execute(sa.select(executions))).one()._mapping
    assert {k: row[k] for k in ("status", "started_at", "finished_at", "progress", "progress_message",
                                "error_code", "error_message", "result", "intent")} == {
        "status": "failed", "started_at": 1.5, "finished_at": 2.75, "progress": 0.25,
        "progress_message": "a quarter", "error_code": "boom", "error_message": "it broke", "result": None,
        "intent": "echo"}
    await store.close()


async def test_two_writers_over_the_same_sessions_keep_every_seq_gapless(database_url) -> None:
    """Two runtime replicas' event logs, their batches over the same sessions in opposite orders."""
    store = await make_store(database_url)
    await _add_session(store, "s2")
    other = Store(store.url)
    logs = [EventLog(store, MemoryBus()), EventLog(other, MemoryBus())]
    for log in logs:
        await log.start()
    try:
        recorded = await asyncio.gather(*(
            logs[i % 2].append(NewEvent("custom", {"i": i}, ("s1", "s2")[(i // 2 + i) % 2]))
            for i in range(400)
        ))
    finally:
        for log in logs:
            await log.close()
        await other.close()
    for session_id in ("s1", "s2"):
        seqs = sorted(e["seq"] for e in recorded if e["session_id"] == session_id)
        assert seqs == list(range(1, len(seqs) + 1))
        assert [e["seq"] for e in await read_session(store, session_id)] == seqs
    await store.close()


class GatedBus(MemoryBus):
    """A bus whose publishes wait until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def publish(self, topic: str, *messages: dict) -> None:
        await self.gate.wait()
        await super().publish(topic, *messages)


async def test_events_recorded_elsewhere_are_published_in_order_without_waiting_for_the_bus(database_url) -> None:
    store = await make_store(database_url)
    bus = GatedBus()
    log, heard = await listening_log(store, bus)
    try:
        accepted = {"type": "execution.accepted", "seq": 1, "session_id": "s1", "execution_id": "e1", "n": 0}
        log.publish_soon([accepted])  # returns at once: the bus is stuck
        async with asyncio.timeout(10):
            started = await log.append(NewEvent("execution.started", {}, "s1", "e1", n=1))
        assert heard == [], "nothing reached the bus yet"
        bus.gate.set()
        async with asyncio.timeout(10):
            while len(heard) < 2:
                await asyncio.sleep(0.01)
        assert [event["type"] for event in heard] == ["execution.accepted", "execution.started"]
        assert heard[1] == started
    finally:
        await log.close()
        await store.close()
