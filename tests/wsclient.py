"""A small test client for the Experience plane: REST helpers and a WebSocket wrapper.

Deliberately independent of ``intentd.client`` (the SDK): these tests check
the wire protocol itself, with the ``websockets`` library.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

AGENT = "/api/runtime/agent"
STREAM = "/api/ws"
RECV_TIMEOUT = 15.0


@dataclass
class Login:
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass
class Session:
    session_id: str
    session_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.session_token}"}


async def login(http: httpx.AsyncClient, email: str, password: str) -> Login:
    response = await http.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    return Login(body["access_token"], body["refresh_token"])


async def new_session(http: httpx.AsyncClient, auth: Login, **body: Any) -> Session:
    response = await http.post("/api/sessions", json=body, headers=auth.headers)
    assert response.status_code == 201, response.text
    created = response.json()
    return Session(created["session_id"], created["session_token"])


class Closed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed with {code} {reason!r}")
        self.code = code
        self.reason = reason


@dataclass
class Sock:
    """One WebSocket; every session event received is also kept in ``events``."""

    ws: ClientConnection
    ready: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    replies: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    async def open(
        cls,
        ws_url: str,
        path: str = AGENT,
        *,
        token: str | None = None,
        query_token: str | None = None,
        after_seq: int | None = None,
        origin: str | None = None,
        expect_ready: bool = True,
    ) -> Sock:
        query = []
        if query_token is not None:
            query.append(f"session_token={query_token}")
        if after_seq is not None:
            query.append(f"after_seq={after_seq}")
        url = ws_url + path + ("?" + "&".join(query) if query else "")
        headers = {"Origin": origin} if origin else None
        ws = await connect(url, additional_headers=headers, open_timeout=10, max_size=4 << 20)
        sock = cls(ws)
        if token is not None:
            try:
                await sock.send({"type": "auth", "session_token": token})
            except ConnectionClosed:  # refused before auth (origin, capacity): recv() tells why
                assert not expect_ready
        if expect_ready:
            sock.ready = await sock.recv()
            assert sock.ready["type"] == "ready", sock.ready
        return sock

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(message if isinstance(message, (str, bytes)) else json.dumps(message))

    async def recv(self, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except ConnectionClosed as exc:
            raise Closed(exc.rcvd.code if exc.rcvd else None, exc.rcvd.reason if exc.rcvd else "") from None
        message = json.loads(raw)
        (self.events if "seq" in message else self.replies).append(message)
        return message

    async def until(self, matches: Callable[[dict[str, Any]], bool], timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
        """Receive until a message ``matches``; return it (everything is recorded on the way)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching message within {timeout} s; replies={self.replies[-5:]}")
            message = await self.recv(left)
            if matches(message):
                return message

    async def reply(self, message_id: Any, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
        """The ack or error answering ``message_id``."""
        return await self.until(
            lambda m: m.get("type") in ("ack", "error", "pong")
            and (m.get("id") == message_id or m.get("reply_to") == message_id),
            timeout,
        )

    async def closed(self, timeout: float = RECV_TIMEOUT) -> Closed:
        """Receive until the server closes; the close code and reason."""
        try:
            await self.until(lambda _: False, timeout)
        except Closed as closed:
            return closed
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self.ws.close()


def of_type(kind: str, execution_id: str | None = None) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("type") == kind and (execution_id is None or m.get("execution_id") == execution_id)


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [event["seq"] for event in events]
