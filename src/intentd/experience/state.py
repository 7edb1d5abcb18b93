"""What one Experience plane process holds: stored on ``app.state.experience``.

Objects are built with the app (so routes and dependencies can reach them at
once); their connections open in the app's lifespan (``open``) and close in
reverse order (``close``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from intentd.bus import Bus, create_bus
from intentd.config import Settings
from intentd.experience.hub import Hub
from intentd.experience.limits import Limiter
from intentd.experience.runtime_client import RuntimeClient
from intentd.experience.sessions import SESSIONS_BY_TOKEN_HASH
from intentd.store import Store
from intentd.store.batched_lookup import BatchedLookup
from intentd.store.events import prune
from intentd.store.migrate import prepare_schema

log = structlog.get_logger("intentd.experience")

RETENTION_EVERY = 3600.0
MIN_RETENTION = 24 * 3600.0  # DESIGN §5: replay works for at least 24 h


@dataclass
class ExperienceState:
    settings: Settings
    store: Store
    bus: Bus
    runtime: RuntimeClient
    hub: Hub
    limiter: Limiter
    sessions_by_token: BatchedLookup  # what a session token opens, for bursts of connects
    # False when the embedded root shares its store and bus with the runtime
    # plane: it then migrates, starts and closes them itself.
    owns_store: bool = True
    owns_bus: bool = True
    started_at: float = field(default_factory=time.time)
    # Run once the plane is up (before it serves): the start-up announcement.
    on_ready: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _retention: asyncio.Task[None] | None = None

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        runtime: RuntimeClient | None = None,
        store: Store | None = None,
        bus: Bus | None = None,
    ) -> ExperienceState:
        the_store = store if store is not None else Store.from_settings(settings)
        the_bus = bus if bus is not None else create_bus(settings.redis_url)
        return cls(
            settings=settings,
            store=the_store,
            bus=the_bus,
            runtime=runtime if runtime is not None else RuntimeClient(settings),
            hub=Hub(the_store, the_bus),
            limiter=Limiter(settings),
            sessions_by_token=BatchedLookup(the_store, SESSIONS_BY_TOKEN_HASH, "token_hash"),
            owns_store=store is None,
            owns_bus=bus is None,
        )

    async def open(self) -> None:
        if self.owns_store:
            await prepare_schema(self.settings.app_database_url, auto_migrate=self.settings.auto_migrate)
        if self.owns_bus:
            await self.bus.start()
        await self.hub.start()
        self._retention = asyncio.create_task(self._prune_forever(), name="event-retention")
        log.info("experience plane started", mode=self.settings.mode)
        for callback in self.on_ready:
            await callback()

    async def close(self) -> None:
        if self._retention is not None:
            self._retention.cancel()
            await asyncio.gather(self._retention, return_exceptions=True)
        await self.hub.close()
        await self.runtime.close()
        await self.limiter.close()
        if self.owns_bus:
            await self.bus.close()
        if self.owns_store:
            await self.store.close()

    async def _prune_forever(self) -> None:
        """Drop session events older than ``event_retention`` (every replica may; deleting twice is harmless)."""
        while True:
            await asyncio.sleep(RETENTION_EVERY)
            try:
                keep = max(self.settings.event_retention, MIN_RETENTION)
                removed = await prune(self.store, time.time() - keep)
                if removed:
                    log.info("old events pruned", count=removed)
            except Exception as exc:  # the store is down: next round
                log.warning("event pruning failed", error=type(exc).__name__)
