"""Calls that arrive together, made as one: at most ``slots`` batches in flight, the rest wait and go together.

No timer: an item waits only while every slot already waits for its batch's
answer, so at light load each goes alone, at once. Two users: the experience
plane's submissions (one request to the runtime for many) and the session
tokens of a burst of connects (one read for many).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")


@dataclass(eq=False)
class Batches(Generic[Item, Answer]):
    """``submit(item)``: ``item``'s answer, from a ``send`` of the batch it went in.

    ``send(items)`` answers each item in order; an exception in its answers
    fails that item alone, an exception it raises fails the whole batch.
    ``take(waiting)`` says how many of the waiting items (at least one) the
    next batch carries.
    """

    send: Callable[[list[Item]], Awaitable[list[Any]]]
    slots: int
    take: Callable[[list[Item]], int]
    _waiting: list[tuple[Item, asyncio.Future[Answer]]] = field(default_factory=list)
    _senders: set[asyncio.Task[None]] = field(default_factory=set)  # held: the loop keeps only weak references

    async def submit(self, item: Item) -> Answer:
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if len(self._senders) < self.slots:
            self._senders.add(asyncio.create_task(self._send_waiting()))
        return await future

    async def _send_waiting(self) -> None:
        try:
            while self._waiting:
                await self._send_batch()
        finally:
            # The slot is free the moment nothing waits. A done callback
            # would free it a loop turn later, and an item submitted in
            # between would find every slot taken and wait with no sender.
            self._senders.discard(asyncio.current_task())  # type: ignore[arg-type]

    async def _send_batch(self) -> None:
        count = max(1, self.take([item for item, _ in self._waiting]))
        batch, self._waiting = self._waiting[:count], self._waiting[count:]
        try:
            answers: list[Any] = await self.send([item for item, _ in batch])
        except Exception as exc:
            answers = [exc] * len(batch)
        except BaseException:  # cancelled: so are the items it carried
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), answer in zip(batch, answers, strict=True):
            if future.done():  # its caller went away
                continue
            if isinstance(answer, Exception):
                future.set_exception(answer)
            else:
                future.set_result(answer)
