"""Helpers shared by every test: ports, services, intentd subprocesses, binaries.

Import from tests as ``import harness`` / ``from harness import ...``: ``tests/``
is on ``sys.path`` because it holds ``conftest.py`` and no ``__init__.py``.
Fixtures built on these live in ``conftest.py``.

Services are never skipped: a test that needs PostgreSQL, Redis, nginx or
chromium fails with a message saying how to get it (``./scripts/test``
installs and starts all of them).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, Self

import httpx
import psycopg
import pytest
from psycopg import sql

LOCALHOST = "127.0.0.1"
POSTGRES_HOST, POSTGRES_PORT = LOCALHOST, 5432
POSTGRES_ADMIN_DB = "test"
REDIS_HOST, REDIS_PORT = LOCALHOST, 6379
NGINX_PATHS = ("/usr/sbin/nginx",)
CHROMIUM_PATHS = ("/usr/bin/chromium",)
# Chromium on a machine without a network or a display (as root, hence no sandbox).
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


class _Stoppable(Protocol):
    def stop(self) -> None: ...


# Every server process a helper started, so an interrupted run leaves none behind.
_live: set[_Stoppable] = set()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_service(host: str, port: int, name: str) -> None:
    """Fail the test (never skip it) when ``name`` does not accept connections."""
    if port_open(host, port):
        return
    if in_ci():
        pytest.fail(
            f"{name} is not reachable on {host}:{port}, and CI=true requires it: "
            "the CI machine must run it before the tests start.",
            pytrace=False,
        )
    pytest.fail(
        f"{name} is not reachable on {host}:{port}. Run the suite with ./scripts/test, "
        "which starts a throwaway instance when none is running.",
        pytrace=False,
    )


def wait_http(url: str, timeout: float = START_TIMEOUT, status: int = 200) -> httpx.Response:
    """Poll ``GET url`` until it answers ``status``; TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: str = "no attempt"
    while True:
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == status:
                return response
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise TimeoutError(f"GET {url} did not answer {status} within {timeout} s (last: {last})")
        time.sleep(0.1)


# --- PostgreSQL -------------------------------------------------------------


def postgres_database_url(database: str) -> str:
    return f"postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/{database}"


def _admin_connection() -> psycopg.Connection:
    return psycopg.connect(postgres_database_url(POSTGRES_ADMIN_DB), autocommit=True, connect_timeout=5)


def create_database(prefix: str = "intentd_t_") -> str:
    """Create a uniquely named database; returns its URL."""
    require_service(POSTGRES_HOST, POSTGRES_PORT, "PostgreSQL")
    name = f"{prefix}{secrets.token_hex(6)}"
    with _admin_connection() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return postgres_database_url(name)


def drop_database(url: str) -> None:
    """Drop the database of ``url``, closing whatever is still connected to it."""
    name = url.rsplit("/", 1)[1]
    with _admin_connection() as conn:
        # WITH (FORCE) terminates the remaining sessions (a killed server's pool).
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def database_exists(name: str) -> bool:
    with _admin_connection() as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


# --- Redis ------------------------------------------------------------------

_REDIS_DB_LOCK = "intentd-test:db-lock:{}"
_REDIS_DB_LOCK_TTL = 3 * 3600


def claim_redis_db() -> tuple[int, str]:
    """Reserve a Redis database number (1-15) for this test session.

    Concurrent test runs on one machine share the server; a lock key in
    database 0 keeps two runs from using the same number. Returns (number,
    lock token) for ``release_redis_db``.
    """
    import redis

    require_service(REDIS_HOST, REDIS_PORT, "Redis")
    token = secrets.token_hex(8)
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0, socket_timeout=5)
    try:
        numbers = list(range(1, 16))
        secrets.SystemRandom().shuffle(numbers)
        for number in numbers:
            if client.set(_REDIS_DB_LOCK.format(number), token, nx=True, ex=_REDIS_DB_LOCK_TTL):
                return number, token
    finally:
        client.close()
    pytest.fail("all Redis databases 1-15 are claimed by other test runs", pytrace=False)


def release_redis_db(number: int, token: str) -> None:
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0, socket_timeout=5)
    try:
        key = _REDIS_DB_LOCK.format(number)
        if client.get(key) == token.encode():
            client.delete(key)
    finally:
        client.close()


# --- binaries ----------------------------------------------------------------


def _find_binary(name: str, paths: Sequence[str], package: str) -> str:
    for path in (*paths, shutil.which(name)):
        if path and os.access(path, os.X_OK):
            return path
    pytest.fail(
        f"{name} not found (looked in {', '.join(paths)} and PATH): "
        f"install Debian's {package} package, or run ./scripts/test, which does",
        pytrace=False,
    )


def nginx_bin() -> str:
    return _find_binary("nginx", NGINX_PATHS, "nginx")


def chromium_bin() -> str:
    return _find_binary("chromium", CHROMIUM_PATHS, "chromium")


class NginxProcess:
    """A foreground nginx whose every file (pid, logs, temp dirs) lives in ``workdir``.

    ``http_conf`` is the body of the ``http {}`` block (upstreams, maps,
    servers listening on 127.0.0.1 ports of the test's choosing).
    """

    def __init__(self, http_conf: str, workdir: Path) -> None:
        self.workdir = workdir
        self.conf_path = workdir / "nginx.conf"
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        temp_paths = "\n".join(
            f"    {kind}_temp_path {workdir / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # As root, workers would run as nobody, who cannot use the test's private temp dirs.
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.conf_path.write_text(
            f"{user}pid {workdir / 'nginx.pid'};\n"
            f"error_log {workdir / 'error.log'} info;\n"
            "worker_processes 1;\n"
            "events { worker_connections 4096; }\n"
            "http {\n"
            f"    access_log {workdir / 'access.log'};\n"
            f"{temp_paths}\n"
            f"{http_conf}\n"
            "}\n"
        )

    def command(self, *extra: str) -> list[str]:
        return [nginx_bin(), "-p", str(self.workdir), "-c", str(self.conf_path), *extra]

    def check(self) -> subprocess.CompletedProcess[str]:
        """``nginx -t`` on the config; the result carries nginx's diagnosis."""
        return subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)

    def start(self, wait_port: int, timeout: float = START_TIMEOUT) -> Self:
        """Start in the foreground and wait until ``wait_port`` accepts connections."""
        tested = self.check()
        if tested.returncode != 0:
            pytest.fail(f"nginx rejected {self.conf_path}:\n{tested.stderr}", pytrace=False)
        _live.add(self)
        with (self.workdir / "stderr.log").open("ab") as stderr:
            self.proc = subprocess.Popen(
                self.command("-g", "daemon off;"),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + timeout
        while not port_open(LOCALHOST, wait_port, timeout=0.5):
            if self.proc.poll() is not None or time.monotonic() >= deadline:
                self.stop()
                pytest.fail(f"nginx did not open port {wait_port}:\n{self.error_log()}", pytrace=False)
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        _live.discard(self)
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)  # graceful: workers finish and exit with the master
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def error_log(self) -> str:
        parts = [self.workdir / "error.log", self.workdir / "stderr.log"]
        return "\n".join(p.read_text(errors="replace") for p in parts if p.exists())


def chromium_launch_options(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments for Playwright's ``chromium.launch`` using Debian's chromium."""
    return {"executable_path": chromium_bin(), "headless": True, "args": list(CHROMIUM_ARGS), **overrides}


# --- intentd subprocesses -------------------------------------------------------


INTENTD_PROGRAM = (sys.executable, "-m", "intentd")


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for an intentd subprocess: ours minus the shell's ``INTENTD_*``, plus ``extra``.

    Dropping inherited ``INTENTD_*`` keeps a developer's own settings (say a
    database URL) out of the tests.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("INTENTD_")}
    env["PYTHONUNBUFFERED"] = "1"
    # Three test workers' deployments share PostgreSQL's 100 connections.
    env["INTENTD_DBOS_POOL_SIZE"] = "8"
    env.update(extra or {})
    return env


def run_intentd(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input: str | None = None,
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """Run a one-shot CLI command (``["db", "upgrade"]``, ``["routes", "check"]``) to completion."""
    return subprocess.run(
        [*INTENTD_PROGRAM, *args],
        env=child_env(env),
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class IntentdStartError(RuntimeError):
    """The process exited, or /health did not answer, during start()."""


class IntentdProcess:
    """One intentd CLI process serving HTTP on 127.0.0.1:``port``.

    ``args`` are the CLI arguments (``["up", "--data-dir", d]``); ``--host``
    and ``--port`` are appended. The process inherits the environment minus
    any ``INTENTD_*`` of the developer's shell (so tests don't depend on it),
    plus ``env``. stdout and stderr go to ``log_path``; every (re)start
    appends to it.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        port: int | None = None,
        program: Sequence[str] = INTENTD_PROGRAM,
    ) -> None:
        self.args = list(args)
        self.port = port or free_port()
        self.env = dict(env or {})
        self.cwd = cwd
        self.log_path = log_path
        self.program = list(program)
        self.proc: subprocess.Popen[bytes] | None = None
        _live.add(self)

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{LOCALHOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    @property
    def argv(self) -> list[str]:
        return [*self.program, *self.args, "--host", LOCALHOST, "--port", str(self.port)]

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Start and wait until ``GET /health`` answers 200."""
        if self.running():
            raise RuntimeError("already running")
        if port_open(LOCALHOST, self.port, timeout=0.5):
            # Someone else's server would answer our health checks.
            raise IntentdStartError(f"port {self.port} is already in use")
        env = child_env(self.env)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- start: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                env=env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # teardown can kill whatever it spawned
            )
        self._wait_healthy(timeout)
        return self

    def _wait_healthy(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        health = f"{self.url}/health"
        while True:
            code = self.proc.poll()
            if code is not None:
                raise IntentdStartError(
                    f"{self.argv} exited with {code} before {health} answered 200;\n"
                    f"log tail:\n{self.log_tail()}"
                )
            try:
                if httpx.get(health, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() >= deadline:
                self._kill_group()
                raise IntentdStartError(
                    f"{health} did not answer 200 within {timeout} s;\nlog tail:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def kill9(self) -> None:
        """SIGKILL the process (a crash) and reap it."""
        assert self.proc is not None, "not started"
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, wait up to ``timeout`` s; returns the exit code.

        A process that does not exit in time is killed, and the test fails.
        """
        assert self.proc is not None, "not started"
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_group()
                pytest.fail(f"intentd did not exit within {timeout} s of SIGTERM;\n{self.log_tail()}")
        return self.proc.returncode

    def restart(self, timeout: float = START_TIMEOUT) -> Self:
        """Start again with the same arguments, environment and port (stopping it first)."""
        if self.running():
            self.terminate()
        return self.start(timeout)

    def stop(self) -> None:
        """Teardown: make sure nothing of this process is left running."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(STOP_TIMEOUT)
        self._kill_group()
        _live.discard(self)

    def _kill_group(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def stop_all_processes() -> None:
    """Kill whatever a crashed or interrupted test left running."""
    for process in list(_live):
        process.stop()


class UpServer(IntentdProcess):
    """``intentd up`` (embedded mode) with its own data dir and a known admin."""

    def __init__(
        self,
        data_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        admin_email: str = "admin@example.com",
    ) -> None:
        self.data_dir = data_dir
        self.admin_email = admin_email
        self.admin_password = secrets.token_urlsafe(18)
        data_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(
            ["up", "--data-dir", str(data_dir)],
            log_path=data_dir.parent / f"{data_dir.name}.log",
            env={
                "INTENTD_ADMIN_EMAIL": admin_email,
                "INTENTD_ADMIN_PASSWORD": self.admin_password,
                **(env or {}),
            },
            cwd=data_dir.parent,
            port=port,
        )
