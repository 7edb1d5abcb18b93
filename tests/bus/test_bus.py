"""The buses deliver what is published, in order, whether one message at a time or several in one call."""

from __future__ import annotations

import asyncio

import pytest

from intentd.bus import CONTROL, EVENTS, Bus
from intentd.bus.memory import MemoryBus
from intentd.bus.redis import RedisBus


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest):
    bus: Bus = MemoryBus() if request.param == "memory" else RedisBus(request.getfixturevalue("redis_url"))
    await bus.start()
    assert bus.healthy
    yield bus
    await bus.close()


async def _heard(heard: list[dict], count: int) -> list[dict]:
    async with asyncio.timeout(5):
        while len(heard) < count:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # and nothing more
    return heard


async def test_several_messages_in_one_call_arrive_in_order(bus: Bus) -> None:
    heard: list[dict] = []
    control: list[dict] = []
    bus.subscribe(EVENTS, heard.append)
    bus.subscribe(CONTROL, control.append)
    await bus.publish(EVENTS, {"seq": 1})
    await bus.publish(EVENTS, *({"seq": seq} for seq in range(2, 202)))
    await bus.publish(CONTROL, {"type": "session.revoked"})
    assert [m["seq"] for m in await _heard(heard, 201)] == list(range(1, 202))
    assert await _heard(control, 1) == [{"type": "session.revoked"}]
