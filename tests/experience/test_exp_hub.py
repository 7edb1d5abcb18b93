"""The hub's delivery guarantees, in-process on a real SQLite store and event log.

Events race the replay on purpose: the cursor must still deliver every seq
exactly once, in order.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from harness import free_port

from intentd.bus import CONTROL, Bus
from intentd.bus.memory import MemoryBus
from intentd.bus.redis import RedisBus
from intentd.experience.hub import SWEEP_EVERY, Connection, Hub
from intentd.store import Store
from intentd.store.events import EventLog, NewEvent, append_in
from intentd.store.migrate import upgrade_async
from intentd.store.schema import sessions


@dataclass
class Sink:
    """What a socket would have received."""

    events: list[dict[str, Any]] = field(default_factory=list)
    closes: list[tuple[int, str, str | None]] = field(default_factory=list)
    delay: float = 0.0

    async def send(self, event: dict[str, Any]) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.events.append(event)

    async def close(self, code: int, reason: str, error_code: str | None) -> None:
        self.closes.append((code, reason, error_code))

    def seqs(self) -> list[int]:
        return [event["seq"] for event in self.events]

    async def wait_for_seq(self, seq: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not self.events or self.events[-1]["seq"] < seq:
            assert time.monotonic() < deadline, f"stuck at {self.seqs()[-1:]} waiting for {seq}"
            await asyncio.sleep(0.01)


@dataclass
class World:
    store: Store
    bus: Bus
    log: EventLog
    hub: Hub

    async def new_session(self, user_id: str | None = None) -> str:
        session_id = str(uuid.uuid4())
        async with self.store.tx() as conn:
            await conn.execute(
                sa.insert(sessions).values(
                    id=session_id, tenant_id="t", user_id=user_id, token_hash=uuid.uuid4().hex,
                    metadata={}, context={}, created_at=time.time(), expires_at=time.time() + 60,
                )
            )
        return session_id

    async def append(self, session_id: str, count: int) -> None:
        await asyncio.gather(
            *(self.log.append(NewEvent("custom", {"i": i}, session_id=session_id)) for i in range(count))
        )

    def connect(self, session_id: str, sink: Sink, *, user_id: str | None = None, **options: Any) -> Connection:
        conn = Connection(self.store, session_id, user_id, sink.send, sink.close, after_seq=0, **options)
        self.hub.register(conn)
        return conn


async def _world(tmp_path: Path, bus: Bus) -> World:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite'}"
    await upgrade_async(url)
    store = Store(url)
    log = EventLog(store, bus)
    await log.start()
    hub = Hub(store, bus, poll_interval=0.2)
    await hub.start()
    return World(store, bus, log, hub)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    built = await _world(tmp_path, MemoryBus())
    yield built
    await built.hub.close()
    await built.log.close()
    await built.store.close()


async def test_replay_then_live_has_no_gap_and_no_duplicate_while_events_race(world: World) -> None:
    session_id = await world.new_session()
    await world.append(session_id, 200)
    sink = Sink(delay=0.0005)
    conn = world.connect(session_id, sink)
    racing = asyncio.create_task(world.append(session_id, 300))
    conn.replay_from(50)
    await racing
    await sink.wait_for_seq(500)
    assert sink.seqs() == list(range(51, 501))


def _delivery_tasks(session_id: str) -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task.get_name() == f"deliver-{session_id}"]


async def test_an_idle_socket_holds_no_delivery_task_until_its_first_event(world: World) -> None:
    session_id = await world.new_session()
    await world.append(session_id, 3)  # before the connect: not this socket's to deliver
    sink = Sink()
    conn = world.connect(session_id, sink)
    with conn.holding():  # as a socket connects: register, `ready`, then live from last_seq
        await asyncio.sleep(0)
        conn.go_live(3)
    await asyncio.sleep(0.3)  # the hub's log poll included
    assert _delivery_tasks(session_id) == [] and sink.events == []
    await world.append(session_id, 2)
    await sink.wait_for_seq(5)
    assert sink.seqs() == [4, 5]
    assert len(_delivery_tasks(session_id)) == 1


async def test_a_rewind_while_a_send_is_in_flight_is_not_lost(world: World) -> None:
    session_id = await world.new_session()
    sink = Sink(delay=0.002)
    conn = world.connect(session_id, sink)
    conn.replay_from(0)
    await world.append(session_id, 100)
    await sink.wait_for_seq(20)
    conn.replay_from(10)  # a client `resume` mid-stream
    await sink.wait_for_seq(100)
    numbers = sink.seqs()
    restart = len(numbers) - 1 - numbers[::-1].index(11)
    assert numbers[restart:] == list(range(11, 101))
    assert numbers[:restart] == list(range(1, restart + 1))


async def test_a_slow_socket_stays_bounded_and_complete(world: World) -> None:
    session_id = await world.new_session()
    sink = Sink(delay=0.001)
    conn = world.connect(session_id, sink, max_pending=50)
    conn.replay_from(0)
    await world.append(session_id, 400)
    assert len(conn._pending) <= 50  # noqa: SLF001 (the memory bound is the point)
    await sink.wait_for_seq(400)
    assert sink.seqs() == list(range(1, 401))


async def test_holding_defers_delivery_until_released(world: World) -> None:
    session_id = await world.new_session()
    sink = Sink()
    conn = world.connect(session_id, sink)
    conn.replay_from(0)
    with conn.holding():
        await world.append(session_id, 3)
        await asyncio.sleep(0.1)
        assert sink.events == []
    await sink.wait_for_seq(3)
    assert sink.seqs() == [1, 2, 3]


async def test_revocation_and_disabling_close_matching_sockets_with_4401(world: World) -> None:
    revoked, other = await world.new_session("u1"), await world.new_session("u2")
    a, b, c = Sink(), Sink(), Sink()
    world.connect(revoked, a, user_id="u1")
    world.connect(other, b, user_id="u2")
    world.connect(other, c, user_id="u2")
    await world.bus.publish(CONTROL, {"type": "session.revoked", "session_id": revoked})
    await asyncio.sleep(0.05)
    assert a.closes == [(4401, "the session has been revoked", "unauthorized")] and not b.closes
    await world.bus.publish(CONTROL, {"type": "user.disabled", "user_id": "u2"})
    await asyncio.sleep(0.05)
    assert [close[0] for close in b.closes + c.closes] == [4401, 4401]


async def test_shutdown_closes_every_socket_with_1001(world: World) -> None:
    sinks = [Sink() for _ in range(3)]
    for sink in sinks:
        world.connect(await world.new_session(), sink)
    await world.hub.close_all(1001, "server shutting down")
    assert [sink.closes for sink in sinks] == [[(1001, "server shutting down", None)]] * 3


async def test_with_the_bus_down_sockets_are_fed_from_the_log(tmp_path: Path) -> None:
    # A Redis bus whose server does not answer: unhealthy, nothing arrives live.
    bus = RedisBus(f"redis://127.0.0.1:{free_port()}/0")
    assert bus.healthy is False
    world = await _world(tmp_path, bus)
    try:
        session_id = await world.new_session()
        sink = Sink()
        conn = world.connect(session_id, sink)
        conn.replay_from(0)
        await world.append(session_id, 5)
        await sink.wait_for_seq(5, timeout=3)
        await world.append(session_id, 5)
        await sink.wait_for_seq(10, timeout=3)
        assert sink.seqs() == list(range(1, 11))
        # A revocation whose bus message is lost is found in the store.
        async with world.store.tx() as db:
            await db.execute(sa.update(sessions).where(sessions.c.id == session_id).values(revoked_at=time.time()))
        deadline = time.monotonic() + 1
        while not sink.closes and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert [close[0] for close in sink.closes] == [4401]
    finally:
        await world.hub.close()
        await world.log.close()
        await world.store.close()
        await bus.close()


async def test_an_event_the_bus_dropped_is_delivered_by_the_sweep(world: World) -> None:
    session_id = await world.new_session()
    sink = Sink()
    conn = world.connect(session_id, sink)
    conn.go_live(0)
    await world.append(session_id, 3)
    await sink.wait_for_seq(3)
    # Recorded, but never published: as if the bus lost it on a reconnect.
    await world.store.run_write(
        lambda conn: append_in(world.store, conn, NewEvent("custom", {"i": "dropped"}, session_id=session_id)))
    await sink.wait_for_seq(4, timeout=2 * SWEEP_EVERY + 5)  # found by the next sweep, acted on by the one after
    assert sink.seqs() == [1, 2, 3, 4]
    assert sink.events[-1]["data"] == {"i": "dropped"}


async def test_a_sweep_does_not_send_sockets_to_the_log_for_an_event_still_on_its_way(world: World) -> None:
    session_id = await world.new_session()
    sinks = [Sink() for _ in range(5)]
    for sink in sinks:
        world.connect(session_id, sink).go_live(0)
    await asyncio.sleep(SWEEP_EVERY / 2)  # the hub sweeps every SWEEP_EVERY from its start: half-way between two
    recorded = await world.store.run_write(
        lambda conn: append_in(world.store, conn, NewEvent("custom", {"i": "slow"}, session_id=session_id)))
    # Committed, and the bus brings it after one sweep but before a second could
    # act on it: the sweep in between must not send every socket to the log.
    await asyncio.sleep(0.95 * SWEEP_EVERY)
    assert [sink.events for sink in sinks] == [[]] * len(sinks), "read from the log before the bus brought it"
    await world.log.publish([recorded])
    for sink in sinks:
        await sink.wait_for_seq(1)
    assert all(sink.seqs() == [1] for sink in sinks)
