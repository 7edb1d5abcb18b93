"""Fixtures of the Experience plane tests: a real `intentd up` subprocess and clients for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from harness import UpServer
from wsclient import Login, Session, login, new_session


@pytest.fixture(scope="package")
def shared_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpServer]:
    """One `intentd up` for the tests that don't stop or crash it (each uses its own session)."""
    server = UpServer(tmp_path_factory.mktemp("up") / "data")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def http(shared_up: UpServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=shared_up.url, timeout=15) as client:
        yield client


@pytest.fixture
async def admin(http: httpx.AsyncClient, shared_up: UpServer) -> Login:
    return await login(http, shared_up.admin_email, shared_up.admin_password)


@pytest.fixture
async def session(http: httpx.AsyncClient, admin: Login) -> Session:
    return await new_session(http, admin)
