"""The event bus: live, best-effort fan-out between processes.

Never the source of truth: every event is in the store's event log first, and
subscribers that miss a message (a Redis outage, a restart) fill the gap from
the log by ``seq``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

Handler = Callable[[dict[str, Any]], None]
Unsubscribe = Callable[[], None]

# Topics. "events": session events as recorded in the log. "control":
# revocations and cancellation requests.
EVENTS = "events"
CONTROL = "control"


class Bus(Protocol):
    healthy: bool

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, topic: str, *messages: dict[str, Any]) -> None:
        """Send ``messages`` in order (several in one round trip where the bus allows)."""

    def subscribe(self, topic: str, handler: Handler) -> Unsubscribe: ...


def create_bus(redis_url: str | None, *, one_process: bool = False) -> Bus:
    """Redis when configured; otherwise in-process delivery.

    ``one_process``: every plane runs in this process (embedded mode), so
    in-process delivery reaches everyone. Otherwise a plane without Redis
    cannot hear the others: its bus reports itself unhealthy, and subscribers
    read the event log instead.
    """
    if redis_url:
        from intentd.bus.redis import RedisBus

        return RedisBus(redis_url)
    from intentd.bus.memory import MemoryBus

    return MemoryBus(healthy=one_process)
