"""`intentd up`: both planes in one process on one port (embedded mode).

The composition root: it builds the runtime app and the experience app
(which reaches the runtime through its HTTP API, over an in-process ASGI
transport, and submits executions with a direct call), shares one store and one in-process bus between them, and
dispatches every request to the plane that owns its path according to the
route contract, the same data the gateway's proxy configs are rendered from.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import httpx
import structlog
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from intentd.bus import Bus, create_bus
from intentd.config import Settings
from intentd.experience.app import announce, create_experience_app, drain, public_url
from intentd.experience.runtime_client import RuntimeClient
from intentd.gateway.contract import resolve
from intentd.runtime import api as runtime_api
from intentd.runtime.app import create_runtime_app
from intentd.runtime.engine import CreateRequest
from intentd.store import Store
from intentd.store.migrate import prepare_schema

log = structlog.get_logger("intentd.embedded")


class EmbeddedApp:
    """ASGI: the lifespan starts the runtime plane, then the experience plane; requests go by contract."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store.from_settings(settings)
        self.bus: Bus = create_bus(settings.redis_url, one_process=True)
        self.runtime: FastAPI = create_runtime_app(settings, store=self.store, bus=self.bus)
        self.experience: FastAPI = create_experience_app(
            settings,
            runtime=RuntimeClient(settings, httpx.ASGITransport(app=self.runtime), local_create=self._create),
            store=self.store,
            bus=self.bus,
        )

    async def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        return await runtime_api.create(self.runtime.state.runtime.engine, CreateRequest(**body))

    def plane_for(self, path: str) -> FastAPI:
        route = resolve(path)
        return self.runtime if route is not None and route.owner == "runtime" else self.experience

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self.plane_for(scope["path"])(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        async with AsyncExitStack() as stack:
            try:
                await self._start(stack)
            except BaseException as exc:
                log.exception("start-up failed")
                await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                return
            await send({"type": "lifespan.startup.complete"})
            message = await receive()  # lifespan.shutdown
        # The exit stack closed the planes in reverse order: experience, runtime, bus, store.
        await send({"type": "lifespan.shutdown.complete"})

    async def _start(self, stack: AsyncExitStack) -> None:
        await prepare_schema(self.settings.app_database_url, auto_migrate=self.settings.auto_migrate)
        stack.push_async_callback(self.store.close)
        await self.bus.start()
        stack.push_async_callback(self.bus.close)
        await stack.enter_async_context(self.runtime.router.lifespan_context(self.runtime))
        await stack.enter_async_context(self.experience.router.lifespan_context(self.experience))


def create_embedded_app(settings: Settings) -> EmbeddedApp:
    return EmbeddedApp(settings)


def serve_embedded(settings: Settings, host: str, port: int) -> None:
    from intentd.server import run_app

    app = create_embedded_app(settings)
    state = app.experience.state.experience
    state.on_ready.append(lambda: announce(state, public_url(host, port)))
    run_app(app, host, port, settings, drain=lambda: drain(app.experience))
