"""An in-process Experience app with only this package's routers, for fast unit tests.

The end-to-end tests use the real ``intentd up`` subprocess (``up_server``);
these build the same routers on a real SQLite store and an in-process bus.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from harness import UpServer
from identity_helpers import CONSOLE_ORIGIN, World, build_world

from intentd.bus.memory import MemoryBus
from intentd.config import Settings, load_settings
from intentd.experience import auth
from intentd.experience.security import install_security
from intentd.problems import install_problem_handlers
from intentd.store import Store
from intentd.store.migrate import upgrade_async


@dataclass
class MiniState:
    """The part of ExperienceState these modules use."""

    settings: Settings
    store: Store
    bus: MemoryBus
    published: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class MiniApp:
    app: FastAPI
    state: MiniState
    client: httpx.AsyncClient


@pytest.fixture
async def mini_app(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    built: list[MiniApp] = []

    async def make(*, routers: tuple[Any, ...] = (), **overrides: Any) -> MiniApp:
        overrides.setdefault("data_dir", tmp_path / f"data-{len(built)}")
        settings = load_settings({}, **overrides)
        store = Store(settings.app_database_url)  # creates the data dir
        await upgrade_async(settings.app_database_url)
        bus = MemoryBus()
        state = MiniState(settings, store, bus)
        bus.subscribe("control", state.published.append)
        app = FastAPI()
        app.state.experience = state
        install_problem_handlers(app)
        install_security(app, settings)
        app.include_router(auth.router)
        for router in routers:
            app.include_router(router)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.0.0.1", 1234)), base_url="http://testserver"
        )
        built.append(MiniApp(app, state, client))
        return built[-1]

    yield make
    for item in built:
        await item.client.aclose()
        await item.state.store.close()


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One `intentd up` per test module, with two tenants and their principals (see identity_helpers).

    A module may set ``WORLD_ENV`` (a dict of INTENTD_* variables) to configure its server.
    """
    env = {"INTENTD_CORS_ORIGINS": CONSOLE_ORIGIN, **getattr(request.module, "WORLD_ENV", {})}
    server = UpServer(tmp_path_factory.mktemp("world") / "data", env=env)
    try:
        yield build_world(server)
    finally:
        server.stop()
