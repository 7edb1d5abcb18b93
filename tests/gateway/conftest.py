"""Fixtures for the gateway tests: stand-in planes behind real proxies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_proxies import start_stub_plane

from intentd.gateway.render import Upstreams


@pytest.fixture(scope="module")
def stub_upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstreams]:
    """Two stand-in planes (experience, runtime) that answer every path naming themselves."""
    log_dir: Path = tmp_path_factory.mktemp("stubs")
    processes = [start_stub_plane(plane, log_dir) for plane in ("experience", "runtime")]
    try:
        yield {
            p: [f"127.0.0.1:{proc.port}"]
            for p, proc in zip(("experience", "runtime"), processes, strict=True)
        }
    finally:
        for process in processes:
            process.stop()
