"""The measured processes: `intentd up`, `intentd serve runtime|experience`, the echo app, nginx."""

from __future__ import annotations

import contextlib
import getpass
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intentd.bench.procs import (
    LOCALHOST,
    BenchError,
    Process,
    bench_settings,
    cpu_seconds,
    create_sessions,
    free_port,
    intentd_env,
    login,
    python_argv,
    random_secret,
)

AGENT_PATH = "/api/runtime/agent"
NGINX = "/usr/sbin/nginx"


@dataclass
class Server:
    """Where a client reaches the measured process(es), and how to get session tokens."""

    base_url: str
    processes: list[Process]
    password: str = ""
    front: Process | None = None  # the process whose memory a scenario reports (experience / up)
    notes: list[str] = field(default_factory=list)

    @property
    def agent_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + AGENT_PATH

    def session_tokens(self, count: int) -> list[str]:
        deadline = time.monotonic() + 30
        while True:  # the admin account is created once both planes are up
            try:
                access = login(self.base_url, self.password)
                break
            except BenchError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        return [s["session_token"] for s in create_sessions(self.base_url, access, count)]

    def cpu_seconds(self) -> float:
        """CPU time the measured intentd/echo processes have used so far (all their threads)."""
        return sum(cpu_seconds(p.pid) for p in self.processes)

    def check_alive(self) -> None:
        for process in self.processes:
            process.check_alive()


def _stop_all(processes: list[Process]) -> None:
    for process in reversed(processes):
        process.stop()


@contextlib.contextmanager
def embedded(workdir: Path, name: str = "up", **settings: Any) -> Iterator[Server]:
    """`intentd up` (both planes, SQLite, in-process bus) on a free port."""
    password = random_secret()
    port = free_port()
    env = intentd_env(workdir / f"{name}-data", **{**bench_settings(password), **settings})
    process = Process(name, python_argv("-m", "intentd", "up", "--host", LOCALHOST, "--port", str(port)),
                      env=env, log_dir=workdir)
    try:
        process.wait_http(f"http://{LOCALHOST}:{port}/ready")
        yield Server(f"http://{LOCALHOST}:{port}", [process], password, front=process)
    finally:
        process.stop()


@contextlib.contextmanager
def distributed(workdir: Path, database_url: str, redis_url: str, replicas: int, **settings: Any) -> Iterator[Server]:
    """`intentd serve runtime` x ``replicas`` + `intentd serve experience` on PostgreSQL and Redis."""
    password = random_secret()
    common = {
        **bench_settings(password), "database_url": database_url, "redis_url": redis_url,
        "secret_key": random_secret(), "service_token": random_secret(), "auto_migrate": True, **settings,
    }
    processes: list[Process] = []
    try:
        runtime_ports = []
        for index in range(replicas):
            port = free_port()
            runtime_ports.append(port)
            env = intentd_env(workdir / f"runtime{index}-data", **common)
            process = Process(f"runtime{index}", python_argv("-m", "intentd", "serve", "runtime", "--host", LOCALHOST,
                                                             "--port", str(port)), env=env, log_dir=workdir)
            processes.append(process)
            # One at a time: concurrent first starts would race on the schema migration.
            process.wait_http(f"http://{LOCALHOST}:{port}/ready")
        port = free_port()
        env = intentd_env(workdir / "experience-data", **common,
                          runtime_url=",".join(f"http://{LOCALHOST}:{port}" for port in runtime_ports))
        experience = Process("experience", python_argv("-m", "intentd", "serve", "experience", "--host", LOCALHOST,
                                                       "--port", str(port)), env=env, log_dir=workdir)
        processes.append(experience)
        experience.wait_http(f"http://{LOCALHOST}:{port}/ready")
        yield Server(f"http://{LOCALHOST}:{port}", processes, password, front=experience)
    finally:
        _stop_all(processes)


@contextlib.contextmanager
def echo_app(workdir: Path) -> Iterator[Server]:
    """The bare ASGI echo app on intentd's uvicorn configuration."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTENTD_")}
    process = Process("echo", python_argv("-m", "intentd.bench.echo_app", "--port", str(port)), env=env,
                      log_dir=workdir)
    try:
        process.wait_http(f"http://{LOCALHOST}:{port}/")
        yield Server(f"http://{LOCALHOST}:{port}", [process], front=process)
    finally:
        process.stop()


@contextlib.contextmanager
def nginx_in_front(workdir: Path, upstream: Server) -> Iterator[Server]:
    """nginx, configured by ``intentd.gateway.render``, in the foreground before ``upstream``.

    In embedded mode one process serves both planes, so both upstreams point at it.
    """
    from intentd.gateway.render import render_nginx

    if not os.access(NGINX, os.X_OK):
        raise BenchError(f"{NGINX} not found: install Debian's nginx package")
    address = upstream.base_url.removeprefix("http://")
    port = free_port()
    root = workdir / "nginx"
    (root / "temp").mkdir(parents=True, exist_ok=True)
    config = render_nginx(
        upstreams={"experience": [address], "runtime": [address]}, listen=f"{LOCALHOST}:{port}",
        pid=str(root / "nginx.pid"), error_log=str(root / "error.log"), access_log=str(root / "access.log"),
        temp_dir=str(root / "temp"), daemon=False, user=getpass.getuser() if os.geteuid() == 0 else None,
    )
    (root / "nginx.conf").write_text(config)
    process = Process("nginx", [NGINX, "-p", str(root), "-e", str(root / "error.log"), "-c", str(root / "nginx.conf")],
                      env=dict(os.environ), log_dir=workdir)
    try:
        process.wait_http(f"http://{LOCALHOST}:{port}/health")  # /ready is not routed by the gateway
        # The measured processes stay intentd's: CPU figures through the proxy compare with direct ones.
        yield Server(f"http://{LOCALHOST}:{port}", upstream.processes, upstream.password, front=upstream.front)
    finally:
        process.stop()
