"""The runtime plane as an ASGI app, and how to serve it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from intentd.asgi import BodyLimitMiddleware, PlaneHeaderMiddleware
from intentd.bus import Bus, create_bus
from intentd.config import Settings
from intentd.problems import Problem, install_problem_handlers
from intentd.runtime.api import router
from intentd.runtime.engine import Engine
from intentd.runtime.registry import Registry, discover
from intentd.store import Store
from intentd.store.events import EventLog
from intentd.store.migrate import prepare_schema


@dataclass
class RuntimeState:
    settings: Settings
    registry: Registry
    store: Store
    bus: Bus
    events: EventLog
    engine: Engine


def create_runtime_app(
    settings: Settings, *, store: Store | None = None, bus: Bus | None = None, registry: Registry | None = None
) -> FastAPI:
    """The runtime plane. ``store``/``bus`` are passed in when another plane shares the process."""
    registry = registry if registry is not None else discover(settings.intent_modules)
    owns_store, owns_bus = store is None, bus is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        the_store = store or Store.from_settings(settings)
        the_bus = bus or create_bus(settings.redis_url)
        if owns_store:
            await prepare_schema(settings.app_database_url, auto_migrate=settings.auto_migrate)
        if owns_bus:
            await the_bus.start()
        events = EventLog(the_store, the_bus)
        await events.start()
        engine = Engine(settings, registry, the_store, the_bus, events)
        await engine.start()
        app.state.runtime = RuntimeState(settings, registry, the_store, the_bus, events, engine)
        try:
            yield
        finally:
            await engine.close()
            await events.close()
            if owns_bus:
                await the_bus.close()
            if owns_store:
                await the_store.close()

    app = FastAPI(
        title="intentd runtime", version="1", lifespan=lifespan,
        openapi_url="/api/runtime/openapi.json", docs_url=None, redoc_url=None,
    )
    install_problem_handlers(app)
    app.include_router(router)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok", "plane": "runtime"}

    @app.get("/ready", include_in_schema=False)
    async def ready(request: Request) -> dict[str, object]:
        state: RuntimeState = request.app.state.runtime
        checks: dict[str, str] = {}
        try:
            async with state.store.read() as conn:
                await conn.execute(sa.text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            raise Problem(503, "unavailable", f"database unreachable: {type(exc).__name__}",
                          checks={"database": "down"}) from None
        checks["bus"] = "ok" if state.bus.healthy else "degraded"
        return {"status": "ready", "plane": "runtime", "checks": checks}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, max_depth=settings.max_json_depth)
    app.add_middleware(PlaneHeaderMiddleware, plane="runtime")
    return app


def serve_runtime(settings: Settings, host: str, port: int) -> None:
    from intentd.server import run_app

    run_app(create_runtime_app(settings), host, port, settings)
