"""Runtime-plane fixtures (helpers are in ``runtime_support.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from runtime_support import Runtime, runtime_env, start_runtime


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """One SQLite runtime server (with the test intents) for a test module."""
    workdir = tmp_path_factory.mktemp("runtime")
    process = start_runtime(workdir, runtime_env())
    yield Runtime(process, workdir / "runtime")
    process.stop()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[httpx.Client]:
    with runtime.client() as http:
        yield http


@pytest.fixture
def evidence(tmp_path: Path) -> Path:
    """A directory the test intents write their evidence to."""
    folder = tmp_path / "evidence"
    folder.mkdir()
    return folder
