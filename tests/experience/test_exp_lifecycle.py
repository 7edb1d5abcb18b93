"""`intentd up` start, SIGTERM and restart: sockets told to go away (1001), state kept; secrets never logged."""

from __future__ import annotations

import re

import httpx
from harness import UpServer
from wsclient import Sock, login, new_session, of_type, seqs


async def test_sigterm_closes_sockets_with_1001_and_a_restart_keeps_users_sessions_and_events(up_server) -> None:
    server: UpServer = up_server()
    async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        auth = await login(http, server.admin_email, server.admin_password)
        session = await new_session(http, auth, context={"kept": True})
        agent = await Sock.open(server.ws_url, token=session.session_token)
        stream = await Sock.open(server.ws_url, "/api/ws", query_token=session.session_token)
        await agent.send({"type": "intent", "id": 1, "intent": "echo", "params": {"message": "before"}})
        echo = (await agent.reply(1))["execution_id"]
        await agent.until(of_type("execution.completed", echo))
        await stream.until(of_type("execution.completed", echo))
        before = (await http.get(f"/api/sessions/{session.session_id}/events", headers=session.headers)).json()

        assert server.terminate() == 0, server.log_tail()
        for sock in (agent, stream):
            assert (await sock.closed(timeout=5)).code == 1001
        # Stopped cleanly: nothing on the way out failed.
        failed = [line for line in server.log_text().splitlines() if '"level": "error"' in line]
        assert not failed, failed

        server.start()
        again = await login(http, server.admin_email, server.admin_password)
        assert (await http.get("/api/auth/me", headers=again.headers)).status_code == 200
        after = (await http.get(f"/api/sessions/{session.session_id}/events", headers=session.headers)).json()
        assert after == before
        context = (await http.get(f"/api/sessions/{session.session_id}/context", headers=session.headers)).json()
        assert context == {"context": {"kept": True}}
        resumed = await Sock.open(server.ws_url, token=session.session_token, after_seq=0)
        assert resumed.ready["last_seq"] == before["last_seq"]
        while len(resumed.events) < before["last_seq"]:
            await resumed.recv()
        assert resumed.events == before["items"]
        await resumed.close()


async def test_up_prints_the_url_and_a_generated_admin_password_once(up_server) -> None:
    server: UpServer = up_server(start=False)
    server.env.pop("INTENTD_ADMIN_PASSWORD")
    server.start()
    first = server.log_text()
    assert server.url in first
    match = re.search(rf"log in as {re.escape(server.admin_email)} with password (\S+)", first)
    assert match, first[-2000:]
    async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        await login(http, server.admin_email, match.group(1))
    server.restart()
    second = server.log_text()[len(first):]
    assert server.url in second and match.group(1) not in second


async def test_no_token_or_password_in_any_log_line(up_server) -> None:
    server: UpServer = up_server()
    secrets_seen: list[str] = [server.admin_password]
    async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        auth = await login(http, server.admin_email, server.admin_password)
        refreshed = (await http.post("/api/auth/refresh", json={"refresh_token": auth.refresh_token})).json()
        secrets_seen += [auth.access_token, auth.refresh_token, refreshed["access_token"], refreshed["refresh_token"]]
        session = await new_session(http, auth)
        secrets_seen.append(session.session_token)
        # Every way a token travels: query string, auth message, Bearer header; also failed attempts.
        by_query = await Sock.open(server.ws_url, query_token=session.session_token)
        by_message = await Sock.open(server.ws_url, "/api/ws", token=session.session_token)
        await by_query.send({"type": "message", "id": "m", "text": "/help"})
        turn = (await by_query.reply("m"))["execution_id"]
        await by_message.until(of_type("agent.message", turn))
        await http.post(
            "/api/intent/submit", json={"intent": "echo", "params": {}}, headers=session.headers
        )
        await http.get(f"/api/sessions/{session.session_id}/events?session_token={session.session_token}")
        await http.post("/api/auth/login", json={"email": server.admin_email, "password": "wrong-" + server.admin_password})
        bad = await Sock.open(server.ws_url, query_token=session.session_token + "x", expect_ready=False)
        await bad.closed()
        for sock in (by_query, by_message):
            await sock.close()
        assert seqs(by_message.events), "the stream saw the turn"
    server.terminate()
    log = server.log_text()
    assert "session_token=" in log, "the socket URLs were logged (redacted)"
    for secret in secrets_seen:
        assert secret not in log
