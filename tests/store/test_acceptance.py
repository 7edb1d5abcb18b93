"""Accepting an execution on real SQLite and PostgreSQL stores: row, first event and seq, or nothing."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from store_support import store_with_session

from intentd.store import Store
from intentd.store.acceptance import Duplicate, UnknownSession, accept, accept_many
from intentd.store.events import read_execution, read_session
from intentd.store.schema import events, executions, sessions


@pytest.fixture
async def store(database_url: str):
    store = await store_with_session(database_url)
    yield store
    await store.close()


def _values(execution_id: str | None = None, *, session_id: str | None = "s1", tenant_id: str = "t") -> dict:
    return {
        "id": execution_id or str(uuid.uuid4()), "tenant_id": tenant_id, "user_id": None, "session_id": session_id,
        "parent_id": None, "retry_of": None, "intent": "echo", "params": {"message": "hi", "n": [1, 2]},
        "params_hash": "x", "idempotency_key": None, "status": "accepted", "created_at": time.time(),
    }


async def _counts(store: Store) -> tuple[int, int, int]:
    async with store.read() as conn:
        rows = (await conn.execute(sa.select(sa.func.count()).select_from(executions))).scalar_one()
        logged = (await conn.execute(sa.select(sa.func.count()).select_from(events))).scalar_one()
        last_seq = (await conn.execute(sa.select(sessions.c.last_seq))).scalar_one()
    return rows, logged, last_seq


async def test_an_accepted_execution_has_its_row_and_first_event_with_the_next_seq(store: Store) -> None:
    values = _values()
    first = await accept(store, values)
    second = await accept(store, _values())
    assert (first["seq"], second["seq"]) == (1, 2)
    assert first["type"] == "execution.accepted" and first["n"] == 0
    assert first["data"] == {"intent": "echo", "params": {"message": "hi", "n": [1, 2]}}
    assert await read_execution(store, values["id"]) == [first], "what is returned is what was stored"
    async with store.read() as conn:
        row = (await conn.execute(sa.select(executions).where(executions.c.id == values["id"]))).one()
    assert (row.status, row.session_id, row.params) == ("accepted", "s1", values["params"])


async def test_without_a_session_the_event_has_no_seq(store: Store) -> None:
    recorded = await accept(store, _values(session_id=None))
    assert (recorded["seq"], recorded["session_id"]) == (None, None)
    assert await _counts(store) == (1, 1, 0)


async def test_a_duplicate_writes_nothing_and_takes_no_seq(store: Store) -> None:
    values = _values()
    await accept(store, values)
    with pytest.raises(Duplicate):
        await accept(store, {**values, "created_at": time.time()})
    assert await _counts(store) == (1, 1, 1)
    assert (await accept(store, _values()))["seq"] == 2, "no gap"


@pytest.mark.parametrize(("session_id", "tenant_id"), [("nope", "t"), ("s1", "other-tenant")])
async def test_a_session_that_is_not_the_tenants_writes_nothing(store: Store, session_id, tenant_id) -> None:
    with pytest.raises(UnknownSession):
        await accept(store, _values(session_id=session_id, tenant_id=tenant_id))
    assert await _counts(store) == (0, 0, 0)


async def test_concurrent_accepts_and_duplicates_keep_seq_gapless(store: Store) -> None:
    ids = [str(uuid.uuid4()) for _ in range(20)]
    # Every id submitted twice at once: one of each pair is accepted.
    outcomes = await asyncio.gather(*(accept(store, _values(i)) for i in ids + ids), return_exceptions=True)
    accepted = [o for o in outcomes if isinstance(o, dict)]
    assert len(accepted) == 20
    assert all(isinstance(o, Duplicate) for o in outcomes if not isinstance(o, dict))
    assert sorted(o["seq"] for o in accepted) == list(range(1, 21))
    assert [e["seq"] for e in await read_session(store, "s1")] == list(range(1, 21))
    assert await _counts(store) == (20, 20, 20)


# --- accept_many: a batch, each with its own outcome ---------------------------------------------


async def _add_session(store: Store, session_id: str, tenant_id: str = "t") -> None:
    now = time.time()
    async with store.tx() as conn:
        await conn.execute(sa.insert(sessions).values(id=session_id, tenant_id=tenant_id, token_hash=session_id,
                                                      metadata={}, context={}, created_at=now, expires_at=now + 60))


async def test_a_batch_gives_each_execution_its_own_outcome_and_gapless_seqs(store: Store) -> None:
    await _add_session(store, "s2")
    existing = _values()
    await accept(store, existing)  # s1: seq 1
    twice = _values()
    batch = [
        _values(session_id="s2"),
        _values(),
        {**existing, "created_at": time.time()},  # already accepted
        twice,
        _values(session_id="nope"),
        _values(session_id="s1", tenant_id="other-tenant"),
        _values(session_id=None),
        {**twice, "created_at": time.time()},  # the same execution again, in the same batch
        _values(session_id="s2"),
        _values(),
    ]
    outcomes = await accept_many(store, batch)
    kinds = [type(o).__name__ if not isinstance(o, dict) else o["seq"] for o in outcomes]
    assert kinds == [1, 2, "Duplicate", 3, "UnknownSession", "UnknownSession", None, "Duplicate", 2, 4]
    for values, outcome in zip(batch, outcomes):
        if isinstance(outcome, dict):
            assert outcome["execution_id"] == values["id"] and outcome["n"] == 0
            assert await read_execution(store, values["id"]) == [outcome], "what is returned is what was stored"
    assert [e["seq"] for e in await read_session(store, "s1")] == [1, 2, 3, 4]
    assert [e["seq"] for e in await read_session(store, "s2")] == [1, 2]
    async with store.read() as conn:
        rows = (await conn.execute(sa.select(sa.func.count()).select_from(executions))).scalar_one()
        logged = (await conn.execute(sa.select(sa.func.count()).select_from(events))).scalar_one()
    assert (rows, logged) == (7, 7)


async def test_an_empty_batch_is_answered_without_the_database(tmp_path: Path) -> None:
    # No database behind either store: any statement would fail.
    closed = Store(f"sqlite+aiosqlite:///{tmp_path / 'closed.sqlite'}")
    await closed.close()
    unreachable = Store("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    try:
        for store in (closed, unreachable):
            assert await accept_many(store, []) == []
    finally:
        await unreachable.close()


async def test_concurrent_batches_over_the_same_sessions_keep_seqs_gapless(store: Store) -> None:
    await _add_session(store, "s2")
    ids = [str(uuid.uuid4()) for _ in range(60)]

    def batch(part: list[str]) -> list[dict]:
        return [_values(i, session_id=("s1", "s2")[n % 2]) for n, i in enumerate(part)]

    # Four batches at once, in different orders, each id in two of them.
    results = await asyncio.gather(
        accept_many(store, batch(ids[:30])), accept_many(store, batch(ids[30:])),
        accept_many(store, batch(ids[::-1][:30])), accept_many(store, batch(ids[::-1][30:])),
    )
    accepted = [o for outcomes in results for o in outcomes if isinstance(o, dict)]
    assert len(accepted) == 60
    assert all(isinstance(o, Duplicate) for outcomes in results for o in outcomes if not isinstance(o, dict))
    for session_id in ("s1", "s2"):
        assert [e["seq"] for e in await read_session(store, session_id)] == list(range(1, 31))


async def test_single_and_batch_accepts_of_the_same_executions_neither_deadlock_nor_duplicate(store: Store) -> None:
    await _add_session(store, "s2")
    ids = [str(uuid.uuid4()) for _ in range(40)]

    async def single(execution_id: str) -> object:
        try:
            return await accept(store, _values(execution_id))
        except Duplicate as duplicate:
            return duplicate

    # Each id at once in a batch (two sessions) and alone.
    batches = [accept_many(store, [_values(i, session_id=s) for i, s in zip(ids[k:k + 4], ("s2", "s1") * 2)])
               for k in range(0, 40, 4)]
    results = await asyncio.gather(*batches, *(single(i) for i in ids), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException) and not isinstance(r, Duplicate)]
    assert not failures, failures[:3]
    outcomes = [o for r in results for o in (r if isinstance(r, list) else [r])]
    assert sum(isinstance(o, dict) for o in outcomes) == 40
    logged = 0
    for session_id in ("s1", "s2"):
        found = [e["seq"] for e in await read_session(store, session_id)]
        assert found == list(range(1, len(found) + 1))
        logged += len(found)
    assert logged == 40
