"""Distributed mode: replicas of both planes on PostgreSQL and Redis, as real subprocesses."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from harness import IntentdProcess


@dataclass
class Cluster:
    """A distributed deployment under test: shared env, processes by name."""

    env: dict[str, str]
    tmp_path: Path
    processes: dict[str, IntentdProcess] = field(default_factory=dict)

    def runtime(self, name: str, **extra_env: str) -> IntentdProcess:
        return self._start(name, "runtime", extra_env)

    def experience(self, name: str, runtime: IntentdProcess, **extra_env: str) -> IntentdProcess:
        return self._start(name, "experience", {"INTENTD_RUNTIME_URL": runtime.url, **extra_env})

    def _start(self, name: str, plane: str, extra_env: dict[str, str]) -> IntentdProcess:
        process = IntentdProcess(
            ["serve", plane, "--data-dir", str(self.tmp_path / name)],
            env={**self.env, **extra_env},
            cwd=self.tmp_path,
            log_path=self.tmp_path / f"{name}.log",
        )
        self.processes[name] = process
        return process.start(timeout=60)

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()


@pytest.fixture
def cluster(tmp_path: Path, fresh_postgres_url: Callable[[], str], redis_url: str) -> Iterator[Cluster]:
    env = {
        "INTENTD_DATABASE_URL": fresh_postgres_url(),
        "INTENTD_REDIS_URL": redis_url,
        "INTENTD_SECRET_KEY": secrets.token_urlsafe(32),
        "INTENTD_SERVICE_TOKEN": secrets.token_urlsafe(32),
        "INTENTD_AUTO_MIGRATE": "true",
        "INTENTD_ADMIN_EMAIL": "admin@example.com",
        "INTENTD_ADMIN_PASSWORD": secrets.token_urlsafe(16),
        "INTENTD_HEARTBEAT_INTERVAL": "1",
        "INTENTD_DEAD_AFTER": "4",
    }
    deployment = Cluster(env, tmp_path)
    yield deployment
    deployment.stop()
