"""Socket and intent limits as a client meets them: stable codes and close codes (DESIGN §5)."""

from __future__ import annotations

import httpx
from harness import UpServer
from wsclient import Sock, login, new_session


async def test_socket_message_and_intent_limits(up_server) -> None:
    server: UpServer = up_server(
        env={
            "INTENTD_SOCKETS_PER_SESSION": "2",
            "INTENTD_SOCKETS_PER_PROCESS": "3",
            "INTENTD_SOCKET_MESSAGES_PER_SECOND": "5",
            "INTENTD_INTENTS_PER_MINUTE": "2",
        }
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        auth = await login(http, server.admin_email, server.admin_password)
        first, second = await new_session(http, auth), await new_session(http, auth)

        # Sockets per session: the third of one session is refused with 4429.
        a1 = await Sock.open(server.ws_url, token=first.session_token)
        a2 = await Sock.open(server.ws_url, token=first.session_token)
        a3 = await Sock.open(server.ws_url, token=first.session_token, expect_ready=False)
        assert (await a3.recv())["code"] == "rate_limited"
        assert (await a3.closed()).code == 4429

        # Sockets per process: the fourth socket finds no room (1013).
        b1 = await Sock.open(server.ws_url, token=second.session_token)
        b2 = await Sock.open(server.ws_url, token=second.session_token, expect_ready=False)
        assert (await b2.recv())["code"] == "at_capacity"
        assert (await b2.closed()).code == 1013

        # Intents per minute, over the socket and over REST.
        for n in range(2):
            await b1.send({"type": "intent", "id": n, "intent": "echo", "params": {}})
            assert (await b1.reply(n))["type"] == "ack"
        await b1.send({"type": "intent", "id": "over", "intent": "echo", "params": {}})
        limited = await b1.reply("over")
        assert limited["type"] == "error" and limited["code"] == "rate_limited"
        rest = await http.post("/api/intent/submit", json={"intent": "echo"}, headers=second.headers)
        assert rest.status_code == 429 and rest.json()["code"] == "rate_limited" and int(rest.headers["Retry-After"]) >= 1

        # Messages per second: over the limit gets errors, sustained flooding closes with 4429.
        for n in range(30):
            await a1.send({"type": "ping", "id": n})
        assert (await a1.closed(timeout=5)).code == 4429
        kinds = [reply.get("code") or reply["type"] for reply in a1.replies]
        assert kinds.count("pong") == 5 and "rate_limited" in kinds
        for sock in (a2, b1):
            await sock.close()
