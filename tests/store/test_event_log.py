"""The event log on a real SQLite store: seq assignment, replay dedup, and divergence."""

from __future__ import annotations

import time

import sqlalchemy as sa

from intentd.bus.memory import MemoryBus
from intentd.store import Store
from intentd.store.events import EventLog, NewEvent, read_execution, read_session
from intentd.store.migrate import upgrade_async
from intentd.store.schema import executions, sessions


async def make_store(tmp_path) -> Store:
    url = f"sqlite+aiosqlite:///{tmp_path / 'intentd.sqlite'}"
    await upgrade_async(url)
    store = Store(url)
    now = time.time()
    async with store.tx() as conn:
        await conn.execute(sa.insert(sessions).values(
            id="s1", tenant_id="t", token_hash="h", metadata={}, context={}, created_at=now, expires_at=now + 60))
        await conn.execute(sa.insert(executions).values(
            id="e1", tenant_id="t", session_id="s1", intent="echo", params={}, params_hash="x",
            status="running", created_at=now))
    return store


async def test_replayed_events_are_recorded_once_and_seq_stays_gapless(tmp_path) -> None:
    store = await make_store(tmp_path)
    bus = MemoryBus()
    heard: list[dict] = []
    bus.subscribe("events", heard.append)
    log = EventLog(store, bus)
    await log.start()
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


async def test_a_diverged_replay_never_loses_the_outcome(tmp_path) -> None:
    store = await make_store(tmp_path)
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
