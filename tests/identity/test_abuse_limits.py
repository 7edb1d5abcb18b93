"""Browser and abuse protections on a real `intentd up`: Origin on both sockets, socket and
intent limits, login limits, security headers, body and nesting limits over real HTTP."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest
from identity_helpers import CONSOLE_ORIGIN, World, inside_one_window, open_session
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

WORLD_ENV = {
    "INTENTD_SOCKET_MESSAGES_PER_SECOND": "20",
    "INTENTD_SOCKETS_PER_SESSION": "2",
    "INTENTD_INTENTS_PER_MINUTE": "3",
    "INTENTD_LOGIN_FAILURES_PER_ACCOUNT": "3",
    "INTENTD_LOGIN_FAILURES_PER_IP": "8",
    "INTENTD_MAX_BODY_BYTES": "4096",
    "INTENTD_MAX_JSON_DEPTH": "10",
}
SOCKET_PATHS = ("/api/runtime/agent", "/api/ws")


def _drain(ws, seconds: float = 3.0) -> tuple[list[dict], int | None]:
    """Messages until the server closes the socket, and the close code."""
    seen = []
    try:
        while True:
            seen.append(json.loads(ws.recv(timeout=seconds)))
    except ConnectionClosed as closed:
        return seen, closed.rcvd.code if closed.rcvd else None
    except TimeoutError:
        return seen, None


@pytest.mark.parametrize("path", SOCKET_PATHS)
def test_foreign_origin_gets_an_error_and_4403(world: World, path: str):
    session = open_session(world.url, world.owner)
    url = f"{world.ws_url}{path}?session_token={session.session_token}"
    with connect(url, origin="https://evil.example") as ws:
        seen, code = _drain(ws)
    assert code == 4403
    assert seen == [{"type": "error", "code": "origin_not_allowed", "message": seen[0]["message"]}]


@pytest.mark.parametrize("path", SOCKET_PATHS)
@pytest.mark.parametrize("origin", [None, CONSOLE_ORIGIN, "same"])
def test_listed_same_or_no_origin_is_accepted(world: World, path: str, origin: str | None):
    session = open_session(world.url, world.owner)
    if origin == "same":
        origin = world.url
    with connect(f"{world.ws_url}{path}?session_token={session.session_token}", origin=origin) as ws:
        ready = json.loads(ws.recv(timeout=5))
    assert ready["type"] == "ready" and ready["session_id"] == session.session_id


def test_socket_message_flood_is_limited_then_closed_4429(world: World):
    session = open_session(world.url, world.owner)
    with connect(f"{world.ws_url}/api/runtime/agent?session_token={session.session_token}") as ws:
        json.loads(ws.recv(timeout=5))
        for n in range(60):  # limit 20/s: 20 answered, 20 refused, then closed
            try:
                ws.send(json.dumps({"type": "ping", "id": n}))
            except ConnectionClosed:
                break
        seen, code = _drain(ws)
    assert code == 4429
    kinds = [m["type"] if m["type"] != "error" else m["code"] for m in seen]
    assert kinds.count("pong") >= 1 and "rate_limited" in kinds
    assert kinds.index("rate_limited") > kinds.index("pong")


def test_sockets_per_session_are_limited(world: World):
    session = open_session(world.url, world.owner)
    url = f"{world.ws_url}/api/ws?session_token={session.session_token}"
    with connect(url) as first, connect(url) as second:
        for ws in (first, second):
            assert json.loads(ws.recv(timeout=5))["type"] == "ready"
        with connect(url) as third:
            seen, code = _drain(third)
        assert code == 4429 and seen[-1]["code"] == "rate_limited"
    # Closing frees the slots.
    with connect(url) as again:
        assert json.loads(again.recv(timeout=5))["type"] == "ready"


def test_intent_submissions_are_limited_per_session(world: World):
    inside_one_window()
    session = open_session(world.url, world.owner)
    statuses = []
    for n in range(4):
        response = httpx.post(
            f"{world.url}/api/intent/submit", headers=session.headers,
            json={"intent": "text.stats", "params": {"text": f"word {n}"}},
        )
        statuses.append(response.status_code)
    assert statuses == [202, 202, 202, 429]
    assert response.json()["code"] == "rate_limited" and int(response.headers["retry-after"]) >= 1
    # The socket shares the session's budget.
    with connect(f"{world.ws_url}/api/runtime/agent?session_token={session.session_token}") as ws:
        json.loads(ws.recv(timeout=5))
        ws.send(json.dumps({"type": "intent", "id": "i1", "intent": "text.stats", "params": {"text": "x"}}))
        # Events of the executions submitted above may come first.
        while (reply := json.loads(ws.recv(timeout=5)))["type"] not in ("ack", "error"):
            assert reply["type"].startswith("execution.")
    assert reply["type"] == "error" and reply["code"] == "rate_limited" and reply["reply_to"] == "i1"
    # Another session has its own budget.
    other = open_session(world.url, world.owner)
    ok = httpx.post(f"{world.url}/api/intent/submit", headers=other.headers, json={"intent": "text.stats", "params": {"text": "y"}})
    assert ok.status_code == 202


def test_login_is_limited_per_account_with_retry_after(world: World):
    inside_one_window()
    url = f"{world.url}/api/auth/login"
    for _ in range(3):
        assert httpx.post(url, json={"email": world.peer.email, "password": "not the password"}).status_code == 401
    locked = httpx.post(url, json={"email": world.peer.email, "password": world.peer.password})
    assert locked.status_code == 429 and locked.json()["code"] == "rate_limited"
    assert 1 <= int(locked.headers["retry-after"]) <= 60
    # Other accounts from the same address still log in.
    assert httpx.post(url, json={"email": world.owner.email, "password": world.owner.password}).status_code == 200


def test_login_is_limited_per_address(world: World):
    inside_one_window()
    url = f"{world.url}/api/auth/login"
    statuses = [
        httpx.post(url, json={"email": f"nobody{n}@example.com", "password": "whatever!"}).status_code for n in range(12)
    ]
    # 8 failures from this address (some may have been spent by the previous test).
    assert statuses[-1] == 429 and 401 in statuses
    blocked = httpx.post(url, json={"email": world.admin.email, "password": world.admin.password})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1


def test_security_headers_on_real_responses(world: World):
    for path in ("/health", "/api/auth/me", "/"):
        response = httpx.get(world.url + path)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], path
        assert response.headers["referrer-policy"] == "no-referrer", path
        assert response.headers["x-frame-options"] == "DENY", path


def test_cors_preflight_on_the_real_server(world: World):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    good = httpx.options(f"{world.url}/api/sessions", headers={"Origin": CONSOLE_ORIGIN, **preflight})
    assert good.headers.get("access-control-allow-origin") == CONSOLE_ORIGIN
    bad = httpx.options(f"{world.url}/api/sessions", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in bad.headers


def test_body_limit_holds_for_chunked_bodies_over_a_real_socket(world: World):
    """Raw HTTP/1.1 with Transfer-Encoding: chunked and no Content-Length."""
    host, port = "127.0.0.1", world.server.port
    chunk = b"x" * 1024
    request = (
        b"POST /api/auth/login HTTP/1.1\r\nHost: " + f"{host}:{port}".encode() + b"\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request)
        try:
            for _ in range(16):  # 16 KiB > the 4 KiB limit
                sock.sendall(b"400\r\n" + chunk + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may answer and close before the body is complete
        answer = b""
        deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"body_too_large" in answer or b"content-length" in answer.lower()


def test_declared_body_limit_and_nesting_limit(world: World):
    too_big = httpx.post(f"{world.url}/api/sessions", headers=world.owner.headers, json={"metadata": {"x": "y" * 5000}})
    assert too_big.status_code == 413 and too_big.json()["code"] == "body_too_large"
    nested: dict = {}
    for _ in range(12):
        nested = {"n": nested}
    deep = httpx.post(f"{world.url}/api/sessions", headers=world.owner.headers, json={"metadata": nested})
    assert deep.status_code == 400 and deep.json()["code"] == "json_too_deep"
