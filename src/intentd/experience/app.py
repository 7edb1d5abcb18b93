"""The Experience plane as an ASGI app, and how to serve it alone.

Routes exist as soon as the app is built (so `intentd routes check` can read
them without starting anything); the store, bus and runtime client connect in
the lifespan.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import Receive, Scope, Send

from intentd.asgi import PlaneHeaderMiddleware
from intentd.bus import Bus
from intentd.config import ConfigError, Settings
from intentd.console import mount_console
from intentd.experience import admin, auth, intents, sessions, socket
from intentd.experience.hub import CLOSE_GOING_AWAY
from intentd.experience.runtime_client import RuntimeClient
from intentd.experience.security import document_problems, install_security
from intentd.experience.state import ExperienceState
from intentd.problems import Problem, install_problem_handlers
from intentd.store import Store

PLANE = "experience"


class ExperienceApp(FastAPI):
    """FastAPI, except that the sockets go straight to their endpoints.

    Every middleware passes WebSocket scopes through unchanged, but a socket's
    coroutine would live inside all of their frames for hours: memory per
    socket, and every frame resumed each time it wakes. The socket handler
    checks the Origin and names the plane itself (``Socket.serve``).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            endpoint = socket.ENDPOINTS.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                await endpoint(WebSocket(scope, receive, send))
                return
        await super().__call__(scope, receive, send)


def create_experience_app(
    settings: Settings,
    *,
    runtime: RuntimeClient | None = None,
    store: Store | None = None,
    bus: Bus | None = None,
) -> FastAPI:
    """The Experience plane.

    ``runtime`` reaches the runtime plane in-process (embedded mode);
    without it, a client of ``settings.runtime_url``. ``store``/``bus`` are passed in when
    the embedded root shares them with the runtime plane.
    """
    state = ExperienceState.build(settings, runtime=runtime, store=store, bus=bus)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await state.open()
        try:
            yield
        finally:
            await state.close()

    app = ExperienceApp(title="intentd", version="1", lifespan=lifespan, docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/openapi.json")
    app.state.experience = state
    install_problem_handlers(app)
    install_security(app, settings)
    app.add_middleware(PlaneHeaderMiddleware, plane=PLANE)

    app.include_router(auth.router)
    app.include_router(admin.router)
    app.include_router(sessions.router)
    app.include_router(intents.router)
    app.include_router(socket.router)
    _add_probes(app, state)
    mount_console(app)  # last: it answers every GET no other route takes
    document_problems(app)
    return app


def _add_probes(app: FastAPI, state: ExperienceState) -> None:
    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok", "plane": PLANE}

    @app.get("/ready", include_in_schema=False)
    async def ready() -> dict[str, Any]:
        checks: dict[str, str] = {}
        try:
            await state.store.ping()
            checks["database"] = "ok"
        except Exception as exc:
            raise Problem(503, "unavailable", f"database unreachable: {type(exc).__name__}",
                          checks={"database": "down"}) from None
        if not await state.runtime.ready():
            raise Problem(503, "unavailable", "the runtime plane is unreachable",
                          checks={**checks, "runtime": "down"})
        checks["runtime"] = "ok"
        # Without the bus, sockets fall back to polling the log: degraded, still ready.
        checks["bus"] = "ok" if state.bus.healthy else "degraded"
        return {"status": "ready", "plane": PLANE, "checks": checks}

    @app.get("/metrics", include_in_schema=False)
    async def metrics(_: Request) -> Response:
        # The process-wide registry (the runtime's counters too, in embedded
        # mode), plus this app's live gauges.
        own = (
            "# HELP intentd_experience_sockets Open WebSockets in this process\n"
            "# TYPE intentd_experience_sockets gauge\n"
            f"intentd_experience_sockets {state.hub.socket_count}\n"
        )
        return Response(generate_latest() + own.encode(), media_type=CONTENT_TYPE_LATEST)


async def drain(app: FastAPI) -> None:
    """Before the server stops: close every socket with 1001 so clients reconnect and resume."""
    await app.state.experience.hub.close_all(CLOSE_GOING_AWAY, "server shutting down")


async def announce(state: ExperienceState, url: str) -> None:
    """Print where to go and how to log in (a generated admin password only this once)."""
    from intentd.experience.users import DEFAULT_ADMIN_EMAIL, ensure_admin

    settings = state.settings
    generated = await ensure_admin(state.store, settings)
    email = settings.admin_email or DEFAULT_ADMIN_EMAIL
    where = "" if settings.database_url else f"  (data dir: {settings.data_dir.resolve()})"
    lines = [f"intentd is up: {url}{where}"]
    if generated is not None:
        lines.append(f"log in as {email} with password {generated}")
        lines.append("(generated now and shown only this once; set INTENTD_ADMIN_PASSWORD to choose one)")
    elif settings.admin_password:
        lines.append(f"log in as {email} with the password in INTENTD_ADMIN_PASSWORD")
    else:
        lines.append(f"log in as {email} with the password printed when this data dir was first started")
    lines.append(f"chat in the terminal: intentd chat --url {url}")
    # stdout, not the log: the one place a generated password may appear, once.
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def public_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    return f"http://{shown}:{port}"


def serve_experience(settings: Settings, host: str, port: int) -> None:
    """Run the Experience plane alone, against the runtime plane at ``INTENTD_RUNTIME_URL``."""
    from intentd.server import run_app

    try:
        app = create_experience_app(settings)
    except ConfigError as exc:
        sys.exit(f"refusing to start: {exc}")
    state: ExperienceState = app.state.experience
    state.on_ready.append(lambda: announce(state, public_url(host, port)))
    run_app(app, host, port, settings, drain=lambda: drain(app))
