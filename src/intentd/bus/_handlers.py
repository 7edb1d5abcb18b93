"""Handler bookkeeping shared by the bus implementations."""

from __future__ import annotations

from typing import Any

import structlog

from intentd.bus import Handler, Unsubscribe

log = structlog.get_logger("intentd.bus")


class Handlers:
    def __init__(self) -> None:
        self._by_topic: dict[str, list[Handler]] = {}

    def add(self, topic: str, handler: Handler) -> Unsubscribe:
        self._by_topic.setdefault(topic, []).append(handler)

        def remove() -> None:
            handlers = self._by_topic.get(topic, [])
            if handler in handlers:
                handlers.remove(handler)

        return remove

    def topics(self) -> list[str]:
        return [topic for topic, handlers in self._by_topic.items() if handlers]

    def dispatch(self, topic: str, message: dict[str, Any]) -> None:
        for handler in tuple(self._by_topic.get(topic, ())):
            try:
                handler(message)
            except Exception:  # one broken subscriber must not starve the others
                log.exception("bus handler failed", topic=topic)
