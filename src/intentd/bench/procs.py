"""Starting, watching and stopping the processes a scenario measures.

Every server runs in its own process with the file-descriptor limit raised
to the hard limit; the load generator is another process (``LoadGen``) so the
client never shares an event loop (or a core's worth of Python) with the server.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

LOCALHOST = "127.0.0.1"
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_HOST, REDIS_PORT = LOCALHOST, 6379
# The same lock keys the test harness uses, so a bench and a test run never share a Redis database.
_REDIS_DB_LOCK = "intentd-test:db-lock:{}"
START_TIMEOUT = 60.0
ADMIN_EMAIL = "bench@example.com"
# What a process measured side by side says once it has launched: the others may begin.
READY_LINE = b'{"phase":"ready"}'


class BenchError(RuntimeError):
    """A scenario could not run (a process did not start, the load generator failed)."""


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (each of 10,000 sockets is a descriptor)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def child_setup() -> None:
    """Run in each child before exec: the fd limit raised, and SIGTERM once the bench process is gone.

    The children run in sessions of their own (a Ctrl-C is the orchestrator's
    to handle), so without this a bench killed outright would leave servers
    holding ports, database connections and databases behind.
    """
    raise_fd_limit()
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


def rss_kb(pid: int) -> int:
    """Resident set size of a process, from /proc (kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy so far (all cores, every process), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


class BusyCores:
    """How many of the machine's cores were busy on average, from its creation until ``average()``."""

    def __init__(self) -> None:
        self._busy, self._started = machine_busy_seconds(), time.monotonic()

    def average(self) -> float:
        return round((machine_busy_seconds() - self._busy) / (time.monotonic() - self._started), 2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@contextlib.contextmanager
def workdir(name: str) -> Iterator[Path]:
    """A temporary directory for logs and data; kept (and named) when the scenario fails."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix=f"intentd-bench-{name}-"))
    try:
        yield path
    except BaseException:
        print(f"logs kept in {path}", file=sys.stderr)
        raise
    shutil.rmtree(path, ignore_errors=True)


def idle_cpu_util(server: Any, seconds: float = 2.0) -> float:
    """Cores a server (``servers.Server``) uses while nothing asks anything of it."""
    before = server.cpu_seconds()
    time.sleep(seconds)
    return max(server.cpu_seconds() - before, 0.0) / seconds


def random_secret() -> str:
    return secrets.token_urlsafe(32)


class Process:
    """A child process whose output goes to a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: Sequence[str], *, env: Mapping[str, str], log_dir: Path,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            list(argv), env=dict(env), cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=child_setup, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kb(self) -> int:
        return rss_kb(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")

    def wait_http(self, url: str, timeout: float = START_TIMEOUT) -> None:
        """Poll ``url`` until it answers 200."""
        deadline = time.monotonic() + timeout
        last = "no attempt"
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                response = httpx.get(url, timeout=2.0)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.1)
        raise BenchError(f"{self.name}: {url} not ready within {timeout:g} s ({last}):\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]


def intentd_env(data_dir: Path, **settings: Any) -> dict[str, str]:
    """The environment of an intentd process: INTENTD_* from ``settings`` (lower-case names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTENTD_")}
    env["INTENTD_DATA_DIR"] = str(data_dir)
    env["INTENTD_LOG_LEVEL"] = "WARNING"  # an access-log line per request would be measured too
    for name, value in settings.items():
        if value is not None:
            env[f"INTENTD_{name.upper()}"] = _env_value(value)
    return env


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def bench_settings(admin_password: str) -> dict[str, Any]:
    """Limits that would throttle a load test on purpose are lifted; everything else is the default."""
    return {
        "admin_email": ADMIN_EMAIL,
        "admin_password": admin_password,
        "sockets_per_session": 100_000,
        "sockets_per_process": 100_000,
        "socket_messages_per_second": 1_000_000,
        "intents_per_minute": 10_000_000,
        # Logging in races the admin bootstrap at start-up: early 401s must not lock the account.
        "login_failures_per_account": 1_000,
        "login_failures_per_ip": 1_000,
        "intent_modules": "intentd.bench.stream_intent",
    }


# --- sessions ---------------------------------------------------------------------


def login(base_url: str, password: str) -> str:
    response = httpx.post(f"{base_url}/api/auth/login", json={"email": ADMIN_EMAIL, "password": password}, timeout=30)
    if response.status_code != 200:
        raise BenchError(f"login failed: HTTP {response.status_code} {response.text[:300]}")
    return response.json()["access_token"]


def create_sessions(base_url: str, access_token: str, count: int) -> list[dict[str, Any]]:
    """``count`` sessions ({session_id, session_token}) over one keep-alive connection."""
    sessions = []
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {access_token}"}, timeout=30) as client:
        for _ in range(count):
            response = client.post("/api/sessions", json={})
            if response.status_code != 201:
                raise BenchError(f"POST /api/sessions: HTTP {response.status_code} {response.text[:300]}")
            sessions.append(response.json())
    return sessions


# --- PostgreSQL and Redis -----------------------------------------------------------


@contextlib.contextmanager
def postgres_database(prefix: str = "intentd_bench_") -> Iterator[str]:
    """A fresh database on the local PostgreSQL, dropped afterwards; yields its URL."""
    import psycopg
    from psycopg import sql

    name = f"{prefix}{secrets.token_hex(5)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextlib.contextmanager
def redis_database() -> Iterator[str]:
    """A Redis database number (1-15) reserved with the test harness's lock keys; yields its URL."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0, socket_timeout=5)
    token = secrets.token_hex(8)
    try:
        for number in range(15, 0, -1):
            key = _REDIS_DB_LOCK.format(number)
            if client.set(key, token, nx=True, ex=3 * 3600):
                break
        else:
            raise BenchError("every Redis database 1-15 is reserved")
        try:
            yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
        finally:
            if client.get(key) == token.encode():
                client.delete(key)
    finally:
        client.close()


# --- the load generator ---------------------------------------------------------------


class LoadGen:
    """``python -m intentd.bench.loadgen``: one job in (JSON on stdin), JSON lines out.

    Jobs with several phases wait for a ``continue`` line between phases, so
    the orchestrator can look at the server (its RSS) while the load is held.
    """

    def __init__(self, job: dict[str, Any], *, log_dir: Path, name: str = "loadgen") -> None:
        self._stderr = (log_dir / f"{name}.log").open("wb")
        self.log_path = log_dir / f"{name}.log"
        self.proc = subprocess.Popen(
            python_argv("-m", "intentd.bench.loadgen"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr, preexec_fn=child_setup, start_new_session=True,
        )
        self._selector = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)
        self._buffer = b""
        self._send(job)

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(orjson.dumps(message) + b"\n")
        self.proc.stdin.flush()

    def read(self, timeout: float) -> dict[str, Any]:
        """The next JSON line, waiting at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._selector.select(remaining):
                if time.monotonic() >= deadline:
                    self.kill()
                    raise BenchError(f"load generator silent for {timeout:g} s:\n{self._tail()}")
                continue
            chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
            if not chunk:
                self.proc.wait(5)
                raise BenchError(f"load generator exited with {self.proc.returncode}:\n{self._tail()}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message = orjson.loads(line)
        if message.get("phase") == "error":
            raise BenchError(f"load generator failed: {message.get('error')}\n{self._tail()}")
        return message

    def proceed(self) -> None:
        self._send({"cmd": "continue"})

    def __enter__(self) -> LoadGen:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is not None:  # aborted: what it would still measure is of no use
            self.kill()
        try:
            self.proc.wait(60)  # done with its job, it exits by itself
        except subprocess.TimeoutExpired:
            self.kill()
        self._stderr.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def _tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""


def run_loadgen(job: dict[str, Any], *, log_dir: Path, timeout: float, name: str = "loadgen") -> dict[str, Any]:
    """A single-phase job: its one result."""
    with LoadGen(job, log_dir=log_dir, name=name) as gen:
        return gen.read(timeout)
