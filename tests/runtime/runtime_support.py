"""Helpers of the runtime-plane tests: `intentd serve runtime` subprocesses, a checking client, assertions."""

from __future__ import annotations

import secrets
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
from harness import IntentdProcess

TESTS_DIR = Path(__file__).parent
TEST_INTENTS = "intents_for_tests"
PLANE_HEADER = "X-Intentd-Plane"
TERMINAL = frozenset({"completed", "failed", "cancelled"})
WAIT_TIMEOUT = 20.0


def runtime_env(*, modules_path: Path = TESTS_DIR, **extra: str) -> dict[str, str]:
    """Environment of a runtime server that also loads the test intents."""
    return {
        "INTENTD_SERVICE_TOKEN": secrets.token_urlsafe(24),
        "INTENTD_SECRET_KEY": secrets.token_urlsafe(32),
        "INTENTD_INTENT_MODULES": TEST_INTENTS,
        "PYTHONPATH": str(modules_path),
        "INTENTD_LOG_LEVEL": "WARNING",
        **extra,
    }


def start_runtime(workdir: Path, env: Mapping[str, str], *, name: str = "runtime") -> IntentdProcess:
    data_dir = workdir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    process = IntentdProcess(
        ["serve", "runtime", "--data-dir", str(data_dir)],
        env=env,
        cwd=workdir,
        log_path=workdir / f"{name}.log",
    )
    return process.start(timeout=60)


class Runtime:
    """A started runtime server and what a test needs to talk to it."""

    def __init__(self, process: IntentdProcess, data_dir: Path | None = None) -> None:
        self.process = process
        self.data_dir = data_dir
        self.token: str = process.env["INTENTD_SERVICE_TOKEN"]
        self.secret_key: str = process.env["INTENTD_SECRET_KEY"]

    @property
    def url(self) -> str:
        return self.process.url

    def client(self, token: str | None = "service", **kwargs: Any) -> httpx.Client:
        """A client that checks every response names the runtime plane."""
        headers = dict(kwargs.pop("headers", {}))
        if token == "service":
            token = self.token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=kwargs.pop("timeout", 30.0),
            event_hooks={"response": [assert_runtime_plane]},
            **kwargs,
        )

    def admin_token(
        self,
        tenant_id: str,
        *,
        role: str = "admin",
        ttl: float = 600,
        key: str | None = None,
        stored_role: str | None = None,
        disabled: bool = False,
        revoked: bool = False,
    ) -> str:
        """An access JWT as the experience plane issues them (api.md: Auth), for a user
        row written into the store (``stored_role`` defaults to the token's role)."""
        now = int(time.time())
        user_id, jti = str(uuid.uuid4()), str(uuid.uuid4())
        assert self.data_dir is not None, "admin tokens need the SQLite data dir to store their user"
        with sqlite3.connect(self.data_dir / "intentd.sqlite", timeout=30) as conn:
            conn.execute(
                "INSERT INTO users (id, tenant_id, email, password_hash, role, disabled, created_at) "
                "VALUES (?, ?, ?, 'x', ?, ?, ?)",
                (user_id, tenant_id, f"{user_id}@example.com", stored_role or role, disabled, now),
            )
            if revoked:
                conn.execute("INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?)", (jti, now + 3600))
        claims = {
            "sub": user_id,
            "tid": tenant_id,
            "role": role,
            "typ": "access",
            "jti": jti,
            "iat": now,
            "exp": now + int(ttl),
        }
        return jwt.encode(claims, key or self.secret_key, algorithm="HS256")


def assert_runtime_plane(response: httpx.Response) -> None:
    assert response.headers.get(PLANE_HEADER) == "runtime", (
        f"{response.request.method} {response.request.url.path} answered without {PLANE_HEADER}: runtime"
    )


def tenant() -> str:
    """A tenant id no other test uses, so tests sharing a server don't see each other's executions."""
    return f"t-{secrets.token_hex(6)}"


def create(client: httpx.Client, intent: str, params: dict[str, Any], tenant_id: str, **fields: Any) -> dict[str, Any]:
    response = client.post(
        "/api/runtime/executions", json={"intent": intent, "params": params, "tenant_id": tenant_id, **fields}
    )
    assert response.status_code == 202, response.text
    return response.json()


def wait_for(
    client: httpx.Client,
    execution_id: str,
    condition: Callable[[dict[str, Any]], bool] = lambda e: e["status"] in TERMINAL,
    timeout: float = WAIT_TIMEOUT,
) -> dict[str, Any]:
    """Poll the execution until ``condition`` holds (default: finished); returns it."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/api/runtime/executions/{execution_id}")
        assert response.status_code == 200, response.text
        execution = response.json()
        if condition(execution):
            return execution
        if time.monotonic() >= deadline:
            raise AssertionError(f"execution {execution_id} did not reach the condition: {execution}")
        time.sleep(0.05)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def lines(path: Path) -> list[str]:
    """The lines of an evidence file the test intents write (none when it does not exist yet)."""
    return path.read_text().splitlines() if path.exists() else []


def events_of(client: httpx.Client, execution_id: str, after: int | None = None) -> list[dict[str, Any]]:
    params = {} if after is None else {"after": after}
    response = client.get(f"/api/runtime/executions/{execution_id}/events", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def assert_event_log(events: list[dict[str, Any]], terminal: str) -> None:
    """Exactly-once and ordered: n = 0..k without gap or repeat, one start, one terminal event last."""
    assert [e["n"] for e in events] == list(range(len(events))), [(e["n"], e["type"]) for e in events]
    types = [e["type"] for e in events]
    assert types[0] == "execution.accepted"
    assert types[1] == "execution.started"
    assert types.count("execution.started") == 1
    finished = [t for t in types if t in ("execution.completed", "execution.failed", "execution.cancelled")]
    assert finished == [terminal], types
    assert types[-1] == terminal
    session_seqs = [e["seq"] for e in events if e["session_id"] is not None]
    assert session_seqs == sorted(set(session_seqs)), "a session's seq must increase strictly"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["status"] == status and body["code"] == code, body
    assert body["type"] and body["title"] and "detail" in body
    return body


# --- sessions: the experience plane creates them; the tests write the row directly ---


def _session_row(tenant_id: str) -> tuple[str, dict[str, Any]]:
    session_id = str(uuid.uuid4())
    now = time.time()
    return session_id, {
        "id": session_id,
        "tenant_id": tenant_id,
        "user_id": None,
        "token_hash": secrets.token_hex(32),
        "metadata": "{}",
        "context": '{"topic": "tests"}',
        "created_at": now,
        "expires_at": now + 3600,
        "last_seq": 0,
    }


_INSERT_SESSION = (
    "INSERT INTO sessions (id, tenant_id, user_id, token_hash, metadata, context, created_at, expires_at, last_seq) "
    "VALUES ({})"
)


def sqlite_session(data_dir: Path, tenant_id: str) -> str:
    session_id, row = _session_row(tenant_id)
    with sqlite3.connect(data_dir / "intentd.sqlite", timeout=30) as conn:
        conn.execute(_INSERT_SESSION.format(", ".join("?" * len(row))), tuple(row.values()))
    return session_id


def postgres_session(url: str, tenant_id: str) -> str:
    session_id, row = _session_row(tenant_id)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_INSERT_SESSION.format(", ".join(["%s"] * len(row))), tuple(row.values()))
    return session_id
