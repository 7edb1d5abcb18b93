"""Fixtures shared by the whole suite (helpers they build on are in ``harness.py``)."""

from __future__ import annotations

import itertools
import secrets
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

# `import harness` must work from every test directory, whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).parent))

import harness
from harness import IntentdProcess, UpServer

# A test that uses one of these fixtures gets the marker, so `-m "not browser"` works.
_MARKER_FIXTURES = {
    "postgres": ("postgres_url", "fresh_postgres_url"),
    "redis": ("redis_url",),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in _MARKER_FIXTURES.items():
            if names.intersection(fixtures):
                item.add_marker(marker)


def pytest_sessionfinish() -> None:
    harness.stop_all_processes()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of its own for this test session: postgresql://postgres@127.0.0.1:5432/intentd_t_<hex>."""
    url = harness.create_database()
    yield url
    harness.drop_database(url)


@pytest.fixture
def fresh_postgres_url() -> Iterator[Callable[[], str]]:
    """Factory: each call creates another empty database; all are dropped after the test."""
    created: list[str] = []

    def create() -> str:
        created.append(harness.create_database())
        return created[-1]

    yield create
    for url in created:
        harness.drop_database(url)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """redis://127.0.0.1:6379/<n>, a database number reserved for this test session.

    Pub/sub channels are shared by all database numbers: use ``unique_prefix``
    in channel and key names too.
    """
    number, token = harness.claim_redis_db()
    yield f"redis://{harness.REDIS_HOST}:{harness.REDIS_PORT}/{number}"
    harness.release_redis_db(number, token)


@pytest.fixture
def unique_prefix() -> str:
    """A name prefix no other test (or concurrent test run) uses: ``t<hex>:``."""
    return f"t{secrets.token_hex(6)}:"


@pytest.fixture
def intentd_process(tmp_path: Path) -> Iterator[Callable[..., IntentdProcess]]:
    """Factory: ``intentd_process(["serve", "runtime"], env={...})`` starts an intentd CLI process.

    Pass ``start=False`` to get it unstarted. Every process is stopped after the test.
    """
    processes: list[IntentdProcess] = []
    counter = itertools.count(1)

    def make(
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        start: bool = True,
    ) -> IntentdProcess:
        n = next(counter)
        process = IntentdProcess(
            args, env=env, port=port, cwd=tmp_path, log_path=tmp_path / f"intentd-{n}.log"
        )
        processes.append(process)
        return process.start() if start else process

    yield make
    for process in processes:
        process.stop()


@pytest.fixture
def up_server(tmp_path: Path) -> Iterator[Callable[..., UpServer]]:
    """Factory: ``up_server()`` starts ``intentd up`` on a free port with its own data dir.

    The returned process has ``url``, ``ws_url``, ``data_dir``, ``admin_email``
    (admin@example.com) and ``admin_password`` (random). ``env`` adds
    variables; ``start=False`` returns it unstarted. Stopped after the test.
    """
    servers: list[UpServer] = []
    counter = itertools.count(1)

    def make(
        *, env: Mapping[str, str] | None = None, port: int | None = None, start: bool = True
    ) -> UpServer:
        server = UpServer(tmp_path / f"up-{next(counter)}", env=env, port=port)
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in servers:
        server.stop()
