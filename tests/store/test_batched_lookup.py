"""Lookups that arrive together are answered by one read, on real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from intentd.store import Store
from intentd.store.batched_lookup import MAX_KEYS, BatchedLookup
from intentd.store.migrate import upgrade_async
from intentd.store.schema import sessions

T = TypeVar("T")

BY_HASH = sa.select(sessions.c.id, sessions.c.token_hash).where(
    sessions.c.token_hash.in_(sa.bindparam("keys", expanding=True))
)


class CountingStore(Store):
    """A real store that counts its reads."""

    reads = 0

    async def run_read(self, fn: Callable[[sa.Connection], T]) -> T:
        self.reads += 1
        return await super().run_read(fn)


@pytest.fixture
async def store(database_url: str):
    await upgrade_async(database_url)
    store = CountingStore(database_url)
    now = time.time()
    async with store.tx() as conn:
        await conn.execute(sa.insert(sessions), [
            {"id": f"s{i}", "tenant_id": "t", "token_hash": f"h{i}", "metadata": {}, "context": {},
             "created_at": now, "expires_at": now + 60} for i in range(MAX_KEYS + 20)])
    yield store
    await store.close()


def _ids(rows: list[Any]) -> list[str | None]:
    return [None if row is None else row.id for row in rows]


async def test_lookups_that_arrive_together_share_a_read_and_each_gets_its_row(store: CountingStore) -> None:
    lookup = BatchedLookup(store, BY_HASH, "token_hash")
    assert _ids([await lookup.get("h0")]) == ["s0"]  # alone: read at once
    assert store.reads == 1
    keys = ["h1", "h2", "nope", "h2", "h3"]  # a key twice, and one that matches nothing
    found = await asyncio.gather(*(lookup.get(key) for key in keys))
    assert _ids(found) == ["s1", "s2", None, "s2", "s3"]
    assert store.reads == 2


async def test_a_burst_beyond_one_reads_limit_is_read_in_turns(store: CountingStore) -> None:
    lookup = BatchedLookup(store, BY_HASH, "token_hash")
    count = MAX_KEYS + 20
    found = await asyncio.gather(*(lookup.get(f"h{i}") for i in range(count)))
    assert _ids(found) == [f"s{i}" for i in range(count)]
    assert store.reads == 2  # all were waiting when the first read began: MAX_KEYS, then the rest


async def test_a_failed_read_fails_its_lookups_and_the_next_read_stands_alone(store: CountingStore) -> None:
    broken = BatchedLookup(store, sa.select(sa.text("token_hash")).select_from(sa.text("no_such_table")).where(
        sa.column("token_hash").in_(sa.bindparam("keys", expanding=True))), "token_hash")
    results = await asyncio.gather(*(broken.get(f"h{i}") for i in range(3)), return_exceptions=True)
    assert all(isinstance(result, sa.exc.DBAPIError) for result in results), results
    lookup = BatchedLookup(store, BY_HASH, "token_hash")
    assert _ids([await lookup.get("h4")]) == ["s4"]


async def test_a_lookup_whose_caller_gave_up_leaves_the_others_answered(store: CountingStore) -> None:
    lookup = BatchedLookup(store, BY_HASH, "token_hash")
    first = asyncio.ensure_future(lookup.get("h5"))  # starts a read
    await asyncio.sleep(0)
    waiting = [asyncio.ensure_future(lookup.get(key)) for key in ("h6", "h7")]  # wait for the next one
    await asyncio.sleep(0)
    waiting[0].cancel()
    assert _ids(await asyncio.wait_for(asyncio.gather(first, waiting[1]), 10)) == ["s5", "s7"]
    assert waiting[0].cancelled()


async def test_a_lookup_made_as_the_previous_read_ends_is_read(store: CountingStore) -> None:
    lookup = BatchedLookup(store, BY_HASH, "token_hash")
    assert _ids([await lookup.get("h8")]) == ["s8"]
    # Resumed by its answer, this caller looks up again before the loop runs
    # anything else (two sockets authenticating one after the other).
    async with asyncio.timeout(10):  # in this task: ``wait_for`` would start another, a loop turn later
        assert _ids([await lookup.get("h9")]) == ["s9"]
