"""Hypothesis-driven fuzzing of the agent socket on a real `intentd up`.

Each example opens a socket on the fuzzing session, sends a few bad frames
(garbage, binary, wrong types, huge ids, unknown types), each followed by a
``ping``. The server must answer every bad frame with an ``error`` carrying a
known code (a submission's may come after the pong: submissions run side by
side), never send an event of another session, and keep serving.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from identity_helpers import World, open_session
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

WORLD_ENV = {"INTENTD_SOCKET_MESSAGES_PER_SECOND": "100000", "INTENTD_INTENTS_PER_MINUTE": "100000"}

ERROR_CODES = {
    "malformed_json", "unknown_type", "invalid_message", "unknown_intent", "invalid_params", "not_found",
    "read_only", "rate_limited", "invalid_request", "too_deep", "idempotency_conflict",
}
KNOWN_TYPES = ("auth", "message", "intent", "cancel", "resume", "ping")

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
huge_ids = st.one_of(
    st.text(min_size=201, max_size=5000),  # longer than any id may be
    st.integers(min_value=2**64, max_value=2**200),  # beyond any 64-bit integer
    st.integers(max_value=-(2**63) - 1, min_value=-(2**200)),
    st.floats(allow_nan=False),
    st.lists(st.integers(), min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), min_size=1, max_size=3),
)
not_a_string = st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.booleans(), st.lists(json_scalars, max_size=3))
not_an_object = st.one_of(st.none(), st.integers(), st.text(max_size=20), st.lists(json_scalars, max_size=3))


def _frame(message: Any) -> str:
    return json.dumps(message)


@st.composite
def wrong_typed(draw: st.DrawFn) -> str:
    """A known message type with a field of the wrong type, out of range, or missing."""
    kind = draw(st.sampled_from(("message", "intent", "cancel", "resume")))
    if kind == "message":
        message = draw(st.sampled_from([
            {"type": "message", "id": draw(huge_ids), "text": "hello"},
            {"type": "message", "id": "m", "text": draw(not_a_string)},
            {"type": "message", "id": "m", "text": ""},
            {"type": "message", "text": "no id"},
        ]))
    elif kind == "intent":
        message = draw(st.sampled_from([
            {"type": "intent", "id": "i", "intent": draw(not_a_string), "params": {}},
            {"type": "intent", "id": "i", "intent": "text.stats", "params": draw(not_an_object)},
            {"type": "intent", "id": "i", "intent": "no.such.intent." + draw(st.text(max_size=20)), "params": {}},
            {"type": "intent", "id": "i", "intent": "text.stats", "params": {"text": draw(not_a_string)}},
            {"type": "intent", "id": draw(huge_ids), "intent": "text.stats", "params": {"text": "x"}},
            {"type": "intent", "id": "i", "intent": "x" * 5000, "params": {}},
        ]))
    elif kind == "cancel":
        message = draw(st.sampled_from([
            {"type": "cancel", "id": "c", "execution_id": draw(not_a_string)},
            {"type": "cancel", "id": "c", "execution_id": draw(st.text(min_size=1, max_size=64))},
            {"type": "cancel", "id": "c", "execution_id": "e" * 10_000},
            {"type": "cancel", "id": draw(huge_ids), "execution_id": "e"},
        ]))
    else:
        message = draw(st.sampled_from([
            {"type": "resume", "after_seq": draw(st.integers(max_value=-1))},
            {"type": "resume", "after_seq": draw(not_a_string.filter(lambda v: not isinstance(v, (int, bool))))},
            {"type": "resume"},
            {"type": "resume", "after_seq": 0, "id": draw(huge_ids)},
        ]))
    return _frame(message)


garbage_text = st.one_of(
    st.text(max_size=200).filter(lambda t: not _is_typed_object(t)),
    st.sampled_from(["", "{", "[]", "null", "1e999999", '{"type": 1}', '{"type": null}', "\x00", '"ping"']),
    json_values.map(json.dumps).filter(lambda t: not _is_typed_object(t)),
    st.integers(min_value=1, max_value=50).map(lambda n: "[" * 2000 * n),
)
unknown_type = st.text(max_size=100).filter(lambda t: t not in KNOWN_TYPES).map(
    lambda t: _frame({"type": t, "id": "u"})
)
binary = st.binary(max_size=300).filter(lambda b: not _is_typed_object(b))
bad_frame = st.one_of(garbage_text, unknown_type, wrong_typed(), binary)


def _is_typed_object(data: str | bytes) -> bool:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict) and isinstance(value.get("type"), str)


def _read_until_answered(ws, ping_id: str, session_id: str) -> list[dict]:
    """What arrives until the pong and an error have (a frame without an error times out)."""
    seen, ponged = [], False
    while not (ponged and any(m.get("type") == "error" for m in seen)):
        message = json.loads(ws.recv(timeout=10))
        # Never another session's data.
        assert message.get("session_id", session_id) == session_id, message
        if message.get("type") == "pong" and message.get("id") == ping_id:
            ponged = True
        else:
            seen.append(message)
    return seen


def test_socket_survives_fuzzing_and_answers_every_bad_frame(world: World):
    session = open_session(world.url, world.peer)
    url = f"{world.ws_url}/api/runtime/agent?session_token={session.session_token}"

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)
    @given(frames=st.lists(bad_frame, min_size=1, max_size=6))
    def fuzz(frames: list[str | bytes]) -> None:
        try:
            with connect(url, max_size=2**22) as ws:
                ready = json.loads(ws.recv(timeout=10))
                assert ready["type"] == "ready" and ready["session_id"] == session.session_id
                for n, frame in enumerate(frames):
                    ws.send(frame)
                    ws.send(json.dumps({"type": "ping", "id": f"p{n}"}))
                    replies = _read_until_answered(ws, f"p{n}", session.session_id)
                    errors = [r for r in replies if r.get("type") == "error"]
                    assert errors, f"no error for {frame!r:.200}: {replies}"
                    assert all(e.get("code") in ERROR_CODES for e in errors), errors
                    assert all(isinstance(e.get("message"), str) for e in errors), errors
        except ConnectionClosed as closed:
            raise AssertionError(f"the server closed the socket: {closed.rcvd}") from None

    fuzz()
    assert httpx.get(f"{world.url}/health").status_code == 200


def test_error_echoes_the_id_it_could_read(world: World):
    session = open_session(world.url, world.peer)
    with connect(f"{world.ws_url}/api/runtime/agent?session_token={session.session_token}") as ws:
        json.loads(ws.recv(timeout=10))
        ws.send(_frame({"type": "intent", "id": "abc", "intent": "no.such.intent", "params": {}}))
        reply = json.loads(ws.recv(timeout=10))
        assert reply["type"] == "error" and reply["code"] == "unknown_intent" and reply["reply_to"] == "abc"
        ws.send(_frame({"type": "bogus", "id": 7}))
        reply = json.loads(ws.recv(timeout=10))
        assert reply == {"type": "error", "code": "unknown_type", "message": reply["message"], "reply_to": 7}


def test_ten_protocol_errors_in_a_row_close_4400(world: World):
    session = open_session(world.url, world.peer)
    with connect(f"{world.ws_url}/api/runtime/agent?session_token={session.session_token}") as ws:
        json.loads(ws.recv(timeout=10))
        for _ in range(10):
            ws.send("not json")
        seen = []
        try:
            while True:
                seen.append(json.loads(ws.recv(timeout=10)))
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
    assert code == 4400
    assert [m["code"] for m in seen][:10] == ["malformed_json"] * 10


def test_oversized_frame_ends_the_socket_with_1009(world: World):
    session = open_session(world.url, world.peer)
    with connect(f"{world.ws_url}/api/runtime/agent?session_token={session.session_token}", max_size=None) as ws:
        json.loads(ws.recv(timeout=10))
        replies = []
        try:
            ws.send(_frame({"type": "message", "id": "big", "text": "x" * (2 << 20)}))
            while True:
                replies.append(json.loads(ws.recv(timeout=10)))
        except ConnectionClosed as closed:
            # The server may close while the frame is still being sent; then the
            # close frame can be lost to the TCP reset. It must never be another code.
            assert closed.rcvd is None or closed.rcvd.code == 1009
    assert all(reply.get("reply_to") != "big" and reply["type"] != "ack" for reply in replies)
    assert httpx.get(f"{world.url}/health").status_code == 200
