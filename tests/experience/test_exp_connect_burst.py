"""A burst of sockets authenticating at once (a reconnect storm): each opens its own session, or none."""

from __future__ import annotations

import asyncio

import httpx
from harness import UpServer
from wsclient import Login, Sock, new_session


async def test_sockets_authenticating_together_each_open_their_own_session(
    http: httpx.AsyncClient, shared_up: UpServer, admin: Login
) -> None:
    live = [await new_session(http, admin) for _ in range(8)]
    revoked = await new_session(http, admin)
    assert (await http.delete(f"/api/sessions/{revoked.session_id}", headers=admin.headers)).status_code == 204
    # Five sockets per live session, interleaved with a revoked token and tokens that open nothing.
    tokens = [session.session_token for _ in range(5) for session in live]
    tokens[3::8] = [revoked.session_token] * len(tokens[3::8])
    tokens += ["not-a-token", "x" * 64]
    expected = {session.session_token: session.session_id for session in live}

    async def connect(token: str) -> str | None:
        sock = await Sock.open(shared_up.ws_url, token=token, expect_ready=False)
        first = await sock.recv()
        if first["type"] == "ready":
            await sock.close()
            return first["session_id"]
        assert first["type"] == "error" and first["code"] == "unauthorized", first
        assert (await sock.closed()).code == 4401
        return None

    opened = await asyncio.gather(*(connect(token) for token in tokens))
    assert opened == [expected.get(token) for token in tokens]
    assert opened.count(None) == len(tokens[3::8]) + 2
