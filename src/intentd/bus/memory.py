"""In-process bus for embedded mode: delivery is a function call."""

from __future__ import annotations

from typing import Any

from intentd.bus import Handler, Unsubscribe
from intentd.bus._handlers import Handlers


class MemoryBus:
    def __init__(self, *, healthy: bool = True) -> None:
        self.healthy = healthy
        self._handlers = Handlers()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(self, topic: str, *messages: dict[str, Any]) -> None:
        for message in messages:
            self._handlers.dispatch(topic, message)

    def subscribe(self, topic: str, handler: Handler) -> Unsubscribe:
        return self._handlers.add(topic, handler)
