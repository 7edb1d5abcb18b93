"""Throwaway PostgreSQL and Redis servers a test can stop and start.

Outage tests must not touch the shared servers on 5432/6379 (other tests use
them), so they run their own on free ports.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from harness import free_port, port_open


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    assert found, f"PostgreSQL's {name} is missing: apt-get install -y postgresql"
    return found[-1]


def _as_postgres(argv: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


class TempPostgres:
    def __init__(self) -> None:
        # Its own top-level temp dir: pytest's (mode 700, root's) is closed to the postgres user.
        self.root = Path(tempfile.mkdtemp(prefix="intentd-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self.dir = self.root / "data"
        self.port = free_port()
        self.log = self.root / "postgres.log"
        subprocess.run(
            _as_postgres([_postgres_bin("initdb"), "-D", str(self.dir), "-A", "trust", "-U", "postgres"]),
            check=True, capture_output=True,
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        subprocess.run(
            _as_postgres([_postgres_bin("pg_ctl"), "-D", str(self.dir), "-l", str(self.log), "-w", "-o",
                          f"-p {self.port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off", "start"]),
            check=True, capture_output=True,
        )

    def stop(self, mode: str = "immediate") -> None:
        subprocess.run(
            _as_postgres([_postgres_bin("pg_ctl"), "-D", str(self.dir), "-m", mode, "-w", "stop"]),
            capture_output=True,
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class TempRedis:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        redis_server = shutil.which("redis-server")
        assert redis_server, "redis-server is missing: apt-get install -y redis-server"
        self.proc = subprocess.Popen(
            [redis_server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", self.port, 0.2):
            assert time.monotonic() < deadline, "redis did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
