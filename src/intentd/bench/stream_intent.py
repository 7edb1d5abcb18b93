"""Bench-only intents, loaded with ``INTENTD_INTENT_MODULES=intentd.bench.stream_intent``.

``bench.stream`` emits a paced stream of custom events so the `fanout`
scenario can hold a target event rate; it is hidden from user catalogs.
"""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel, Field

from intentd.runtime.context import IntentContext
from intentd.runtime.registry import intent

TICK = "bench.tick"


class StreamParams(BaseModel):
    count: int = Field(ge=1, le=1_000_000, description="How many events to emit")
    interval: float = Field(ge=0, le=10, description="Seconds between two events")


class StreamResult(BaseModel):
    emitted: int


@intent("bench.stream", description="Bench only: emit `count` bench.tick events, one every `interval` s", hidden=True)
async def stream(ctx: IntentContext, params: StreamParams) -> StreamResult:
    # Paced on a fixed schedule with a plain sleep: durability of the pacing is
    # not what the bench measures, and a durable sleep would add a step per event.
    begin = time.monotonic()
    for i in range(params.count):
        delay = begin + i * params.interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await ctx.emit(TICK, {"i": i})
    return StreamResult(emitted=params.count)
