"""Bad input on the agent socket: a stable error code, `reply_to`, and the socket stays open."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from harness import UpServer
from wsclient import STREAM, Login, Session, Sock


async def _still_open(sock: Sock, marker: str) -> None:
    await sock.send({"type": "ping", "id": marker})
    assert (await sock.reply(marker)) == {"type": "pong", "id": marker}


@pytest.mark.parametrize(
    ("message", "code", "reply_to"),
    [
        ("this is not json", "malformed_json", None),
        ('{"type": "message", "id": "x", "text": ', "malformed_json", None),
        ("[1, 2, 3]", "invalid_message", None),
        ({"id": "no-type"}, "invalid_message", "no-type"),
        ({"type": "teleport", "id": "t1"}, "unknown_type", "t1"),
        ({"type": "message", "id": "m1"}, "invalid_message", "m1"),
        ({"type": "message", "id": "m2", "text": 42}, "invalid_message", "m2"),
        ({"type": "intent", "id": "i1", "params": {}}, "invalid_message", "i1"),
        ({"type": "intent", "id": "i2", "intent": "wait", "params": "soon"}, "invalid_message", "i2"),
        ({"type": "intent", "id": "i3", "intent": "wait", "params": {"seconds": "soon"}}, "invalid_params", "i3"),
        ({"type": "intent", "id": "i4", "intent": "wait", "params": {"seconds": -1}}, "invalid_params", "i4"),
        ({"type": "intent", "id": "i5", "intent": "no.such.intent", "params": {}}, "unknown_intent", "i5"),
        ({"type": "intent", "id": "i6", "intent": "agent.turn", "params": {"text": "hi"}}, "unknown_intent", "i6"),
        ({"type": "cancel", "id": "c1"}, "invalid_message", "c1"),
        ({"type": "cancel", "id": "c2", "execution_id": "not-an-execution"}, "not_found", "c2"),
        ({"type": "resume", "id": "r1", "after_seq": -3}, "invalid_message", "r1"),
        ({"type": "auth", "id": "a1", "session_token": "again"}, "invalid_message", "a1"),
        ('{"type": "intent", "id": "deep", "intent": "echo", "params": {"a": ' + "[" * 100 + "]" * 100 + "}}",
         "invalid_message", None),
    ],
)
async def test_bad_input_gets_an_error_and_the_socket_stays_open(
    shared_up: UpServer, session: Session, message: object, code: str, reply_to: str | None
) -> None:
    sock = await Sock.open(shared_up.ws_url, token=session.session_token)
    await sock.send(message if isinstance(message, str) else json.dumps(message))
    error = await sock.recv()
    assert error["type"] == "error" and error["code"] == code, error
    assert error["message"]
    assert error.get("reply_to") == reply_to
    if code == "invalid_params":
        assert error["errors"] and all({"loc", "msg"} <= set(e) for e in error["errors"])
    await _still_open(sock, "after")
    await sock.close()


async def test_ten_protocol_errors_in_a_row_close_with_4400(shared_up: UpServer, session: Session) -> None:
    sock = await Sock.open(shared_up.ws_url, token=session.session_token)
    for n in range(9):
        await sock.send(f"garbage {n}")
        assert (await sock.recv())["code"] == "malformed_json"
    await _still_open(sock, "resets-the-count")  # a good message in between starts the count again
    for n in range(9):
        await sock.send({"type": "bogus", "id": n})
        assert (await sock.recv())["code"] == "unknown_type"
    await sock.send("the tenth")
    assert (await sock.recv())["code"] == "malformed_json"
    final = await sock.recv()
    assert final["type"] == "error" and final["code"] == "protocol_errors"
    assert (await sock.closed()).code == 4400


async def test_a_frame_over_one_mebibyte_closes_with_1009(shared_up: UpServer, session: Session) -> None:
    sock = await Sock.open(shared_up.ws_url, token=session.session_token)
    await sock.send({"type": "message", "id": "big", "text": "x" * (1 << 20)})
    assert (await sock.closed()).code == 1009


async def test_read_only_stream_refuses_commands(shared_up: UpServer, session: Session) -> None:
    sock = await Sock.open(shared_up.ws_url, STREAM, token=session.session_token)
    for n, message in enumerate(
        [
            {"type": "message", "text": "hello"},
            {"type": "intent", "intent": "echo", "params": {}},
            {"type": "cancel", "execution_id": "x"},
        ]
    ):
        await sock.send({**message, "id": n})
        error = await sock.reply(n)
        assert error["type"] == "error" and error["code"] == "read_only"
    await _still_open(sock, "ro")
    await sock.close()


@pytest.mark.parametrize("how", ["query", "message"])
async def test_an_invalid_token_gets_unauthorized_then_4401(shared_up: UpServer, how: str) -> None:
    bogus = "A" * 43
    if how == "query":
        sock = await Sock.open(shared_up.ws_url, query_token=bogus, expect_ready=False)
    else:
        sock = await Sock.open(shared_up.ws_url, token=bogus, expect_ready=False)
    error = await sock.recv()
    assert error["type"] == "error" and error["code"] == "unauthorized"
    assert (await sock.closed()).code == 4401


async def test_a_first_message_that_is_not_auth_is_unauthorized(shared_up: UpServer) -> None:
    sock = await Sock.open(shared_up.ws_url, expect_ready=False)
    await sock.send({"type": "ping", "id": 1})
    assert (await sock.recv())["code"] == "unauthorized"
    assert (await sock.closed()).code == 4401


async def test_no_auth_within_five_seconds_closes_4401(shared_up: UpServer, session: Session) -> None:
    sock = await Sock.open(shared_up.ws_url, expect_ready=False)
    opened = time.monotonic()
    error = await sock.recv(timeout=10)
    waited = time.monotonic() - opened
    assert error["code"] == "unauthorized" and 4.5 <= waited < 8
    assert (await sock.closed()).code == 4401
    # Too late: the auth message after the deadline finds the socket closed.
    with pytest.raises(Exception):
        await sock.send({"type": "auth", "session_token": session.session_token})
        await sock.recv(timeout=2)


async def test_a_foreign_origin_is_refused_with_4403(shared_up: UpServer, session: Session) -> None:
    sock = await Sock.open(
        shared_up.ws_url, query_token=session.session_token, origin="https://evil.example", expect_ready=False
    )
    error = await sock.recv()
    assert error["type"] == "error" and error["code"] == "origin_not_allowed"
    assert (await sock.closed()).code == 4403
    # The server's own origin is fine.
    own = await Sock.open(shared_up.ws_url, query_token=session.session_token, origin=shared_up.url)
    await own.close()


async def test_invalid_after_seq_closes_4400(shared_up: UpServer, session: Session) -> None:
    sock = await Sock.open(shared_up.ws_url, "/api/runtime/agent?after_seq=minus-one", expect_ready=False)
    error = await sock.recv()
    assert error["code"] == "invalid_message"
    assert (await sock.closed()).code == 4400


async def test_rest_session_endpoints_validate_input(http: httpx.AsyncClient, admin: Login, session: Session) -> None:
    bad_json = await http.post(
        "/api/sessions", content=b"{nope", headers={**admin.headers, "Content-Type": "application/json"}
    )
    assert bad_json.status_code == 400 and bad_json.json()["code"] == "malformed_json"
    wrong = await http.post("/api/sessions", json={"metadata": "not an object"}, headers=admin.headers)
    assert wrong.status_code == 422 and wrong.json()["code"] == "invalid_request"
    smuggled = await http.post("/api/sessions", json={"tenant_id": "other"}, headers=admin.headers)
    assert smuggled.status_code == 422
    anonymous = await http.post("/api/sessions", json={})
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthorized"
    patch = await http.patch(f"/api/sessions/{session.session_id}/context", json={"context": [1]}, headers=session.headers)
    assert patch.status_code == 422
    events = await http.get(f"/api/sessions/{session.session_id}/events?after_seq=-1", headers=session.headers)
    assert events.status_code == 422
    assert (await http.get("/api/sessions/nope", headers=admin.headers)).status_code == 404
