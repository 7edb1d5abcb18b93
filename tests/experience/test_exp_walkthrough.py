"""The newcomer's walkthrough against a real `intentd up`: login, session, agent socket, intents."""

from __future__ import annotations

import time

import httpx
from harness import UpServer
from wsclient import AGENT, Login, Session, Sock, login, new_session, of_type, seqs


async def test_login_session_socket_help_and_plain_language(http: httpx.AsyncClient, shared_up: UpServer) -> None:
    auth = await login(http, shared_up.admin_email, shared_up.admin_password)
    me = (await http.get("/api/auth/me", headers=auth.headers)).json()
    assert me["email"] == shared_up.admin_email and me["role"] == "admin"

    session = await new_session(http, auth, metadata={"client": "test"}, context={"lang": "en"})
    assert len(session.session_token) >= 43  # 32 random bytes, base64url
    sock = await Sock.open(shared_up.ws_url, token=session.session_token)
    assert sock.ready == {"type": "ready", "session_id": session.session_id, "last_seq": 0, "protocol": 1}

    await sock.send({"type": "message", "id": "m1", "text": "/help"})
    ack = await sock.reply("m1")
    assert ack["type"] == "ack" and ack["execution_id"] and ack["duplicate"] is False
    said = await sock.until(of_type("agent.message", ack["execution_id"]))
    assert "text.stats" in said["data"]["text"] and "wait" in said["data"]["text"]
    deltas = [e for e in sock.events if e["type"] == "agent.delta" and e["execution_id"] == ack["execution_id"]]
    assert deltas, "the agent streams deltas before its final message"

    await sock.send({"type": "message", "id": "m2", "text": "count the words in this text: the cat sat on the mat"})
    turn = (await sock.reply("m2"))["execution_id"]
    final = await sock.until(of_type("agent.message", turn))
    children = [
        e for e in sock.events
        if e["type"] == "execution.accepted" and e["data"]["intent"] == "text.stats"
    ]
    assert children, f"a plain-language request runs text.stats; the agent said {final['data']['text']!r}"
    child = children[-1]["execution_id"]
    assert any(e["type"] == "execution.completed" and e["execution_id"] == child for e in sock.events)
    assert "text.stats" in final["data"]["text"]
    await sock.until(of_type("execution.completed", turn))

    # Every event was delivered once, in order, from seq 1.
    assert seqs(sock.events) == list(range(1, len(sock.events) + 1))
    replay = (await http.get(f"/api/sessions/{session.session_id}/events", headers=session.headers)).json()
    assert replay["items"] == sock.events and replay["last_seq"] == len(sock.events)
    await sock.close()


async def test_wait_reports_progress_and_cancels_within_a_second(shared_up: UpServer, session: Session) -> None:
    sock = await Sock.open(shared_up.ws_url, query_token=session.session_token)
    await sock.send({"type": "intent", "id": 1, "intent": "wait", "params": {"seconds": 30}})
    execution_id = (await sock.reply(1))["execution_id"]
    progress = await sock.until(of_type("execution.progress", execution_id), timeout=5)
    assert 0 < progress["data"]["fraction"] < 1
    sent = time.monotonic()
    await sock.send({"type": "cancel", "id": 2, "execution_id": execution_id})
    assert (await sock.reply(2)) == {"type": "ack", "id": 2, "execution_id": execution_id}
    await sock.until(of_type("execution.cancelled", execution_id), timeout=5)
    assert time.monotonic() - sent < 1.0
    await sock.close()


async def test_rest_submit_status_types_and_idempotency(http: httpx.AsyncClient, session: Session, admin: Login) -> None:
    types = (await http.get("/api/intent/types", headers=session.headers)).json()["items"]
    stats = next(t for t in types if t["name"] == "text.stats")
    assert stats["description"] and stats["examples"] and stats["params_schema"]["type"] == "object"
    assert "agent.turn" not in {t["name"] for t in types}

    body = {"intent": "text.stats", "params": {"text": "one two two three"}, "idempotency_key": "k-1"}
    first = await http.post("/api/intent/submit", json=body, headers=session.headers)
    assert first.status_code == 202, first.text
    execution_id = first.json()["execution_id"]
    assert first.json()["duplicate"] is False
    again = await http.post("/api/intent/submit", json=body, headers=session.headers)
    assert again.status_code == 202 and again.json() == {**again.json(), "execution_id": execution_id, "duplicate": True}
    conflict = await http.post(
        "/api/intent/submit", json={**body, "params": {"text": "other"}}, headers=session.headers
    )
    assert conflict.status_code == 409 and conflict.json()["code"] == "idempotency_conflict"

    deadline = time.monotonic() + 10
    while True:
        execution = (await http.get(f"/api/intent/executions/{execution_id}", headers=session.headers)).json()
        if execution["status"] == "completed" or time.monotonic() > deadline:
            break
    assert execution["status"] == "completed", execution
    assert execution["session_id"] == session.session_id and execution["intent"] == "text.stats"
    assert execution["result"]["words"] == 4
    # The owner's access token sees it too; a session token of another session does not.
    assert (await http.get(f"/api/intent/executions/{execution_id}", headers=admin.headers)).status_code == 200
    other = await new_session(http, admin)
    hidden = await http.get(f"/api/intent/executions/{execution_id}", headers=other.headers)
    assert hidden.status_code == 404 and hidden.json()["code"] == "not_found"

    # Submitting needs a session token; an access token is not one.
    refused = await http.post("/api/intent/submit", json=body, headers=admin.headers)
    assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
    unknown = await http.post("/api/intent/submit", json={"intent": "no.such"}, headers=session.headers)
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_intent"
    invalid = await http.post(
        "/api/intent/submit", json={"intent": "wait", "params": {"seconds": "soon"}}, headers=session.headers
    )
    assert invalid.status_code == 422 and invalid.json()["code"] == "invalid_params" and invalid.json()["errors"]


async def test_socket_idempotency_duplicate_and_conflict(shared_up: UpServer, session: Session) -> None:
    sock = await Sock.open(shared_up.ws_url, token=session.session_token)
    intent = {"type": "intent", "intent": "echo", "params": {"value": 1}, "idempotency_key": "same"}
    await sock.send({**intent, "id": "a"})
    first = await sock.reply("a")
    await sock.send({**intent, "id": "b"})
    second = await sock.reply("b")
    assert second["execution_id"] == first["execution_id"] and second["duplicate"] is True
    await sock.send({**intent, "id": "c", "params": {"value": 2}})
    conflict = await sock.reply("c")
    assert conflict["type"] == "error" and conflict["code"] == "idempotency_conflict"
    await sock.send({"type": "ping", "id": "still-open"})
    assert (await sock.reply("still-open")) == {"type": "pong", "id": "still-open"}
    await sock.close()


async def test_sessions_context_listing_and_revocation_closes_sockets_within_a_second(
    http: httpx.AsyncClient, shared_up: UpServer, admin: Login
) -> None:
    session = await new_session(http, admin, context={"a": {"b": 1, "c": 2}, "keep": True})
    patched = await http.patch(
        f"/api/sessions/{session.session_id}/context",
        json={"context": {"a": {"b": None, "d": 3}, "new": "x"}},
        headers=session.headers,
    )
    assert patched.json() == {"context": {"a": {"c": 2, "d": 3}, "keep": True, "new": "x"}}
    got = (await http.get(f"/api/sessions/{session.session_id}/context", headers=admin.headers)).json()
    assert got == patched.json()

    listed = (await http.get("/api/sessions?active=true", headers=admin.headers)).json()["items"]
    assert session.session_id in {s["session_id"] for s in listed}

    agent = await Sock.open(shared_up.ws_url, token=session.session_token)
    stream = await Sock.open(shared_up.ws_url, "/api/ws", query_token=session.session_token)
    revoked_at = time.monotonic()
    assert (await http.delete(f"/api/sessions/{session.session_id}", headers=admin.headers)).status_code == 204
    for sock in (agent, stream):
        error = await sock.recv(timeout=1.0)
        assert error["type"] == "error" and error["code"] == "unauthorized"
        assert (await sock.closed(timeout=1.0)).code == 4401
    assert time.monotonic() - revoked_at < 1.0

    info = (await http.get(f"/api/sessions/{session.session_id}", headers=admin.headers)).json()
    assert info["active"] is False and info["revoked_at"] is not None
    assert (await http.get(f"/api/sessions/{session.session_id}", headers=session.headers)).status_code == 401
    again = await Sock.open(shared_up.ws_url, token=session.session_token, expect_ready=False)
    assert (await again.recv())["code"] == "unauthorized"
    assert (await again.closed()).code == 4401


async def test_another_users_session_is_not_found(http: httpx.AsyncClient, admin: Login, session: Session) -> None:
    created = await http.post(
        "/api/admin/users",
        json={"email": f"bob-{time.time_ns()}@example.com", "password": "bob-password-1", "role": "user"},
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    bob = await login(http, created.json()["email"], "bob-password-1")
    for path in (f"/api/sessions/{session.session_id}", f"/api/sessions/{session.session_id}/events"):
        response = await http.get(path, headers=bob.headers)
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert (await http.delete(f"/api/sessions/{session.session_id}", headers=bob.headers)).status_code == 404
    assert session.session_id not in {s["session_id"] for s in (await http.get("/api/sessions", headers=bob.headers)).json()["items"]}


async def test_plain_http_on_socket_paths_says_how_to_connect(http: httpx.AsyncClient) -> None:
    for path in (AGENT, "/api/ws"):
        response = await http.get(path)
        assert response.status_code == 426
        assert response.headers["x-intentd-plane"] == "experience"
        assert "WebSocket" in response.text and "session_token" in response.text


async def test_disabling_a_user_closes_their_sockets_within_a_second(
    http: httpx.AsyncClient, shared_up: UpServer, admin: Login
) -> None:
    email = f"carol-{time.time_ns()}@example.com"
    created = await http.post(
        "/api/admin/users", json={"email": email, "password": "carol-password-1", "role": "user"}, headers=admin.headers
    )
    carol = await login(http, email, "carol-password-1")
    session = await new_session(http, carol)
    sock = await Sock.open(shared_up.ws_url, token=session.session_token)
    disabled_at = time.monotonic()
    patched = await http.patch(f"/api/admin/users/{created.json()['id']}", json={"disabled": True}, headers=admin.headers)
    assert patched.status_code == 200, patched.text
    assert (await sock.recv(timeout=1))["code"] == "unauthorized"
    assert (await sock.closed(timeout=1)).code == 4401
    assert time.monotonic() - disabled_at < 1
    refused = await http.post("/api/intent/submit", json={"intent": "echo"}, headers=session.headers)
    assert refused.status_code == 401


async def test_probes_answer_for_the_experience_plane(http: httpx.AsyncClient, shared_up: UpServer, session: Session) -> None:
    sock = await Sock.open(shared_up.ws_url, token=session.session_token)
    ready = await http.get("/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "runtime": "ok", "bus": "ok"}
    metrics = await http.get("/metrics")
    gauge = next(line for line in metrics.text.splitlines() if line.startswith("intentd_experience_sockets "))
    assert float(gauge.split()[1]) >= 1
    assert "intentd_executions_created_total" in metrics.text  # the runtime's counters, same process
    await sock.close()
