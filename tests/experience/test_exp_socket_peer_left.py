"""A socket whose peer left mid-delivery still reads what the peer sent before it left.

The socket runs on a real Starlette ``WebSocket`` over in-memory ASGI
channels (as Starlette's test client does), so the failure can be placed
exactly: a delivery fails, the hub closes the socket, and only then does
the receive loop read on.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.websockets import WebSocket, WebSocketDisconnect

from intentd.config import Settings
from intentd.experience.socket import Socket


async def test_a_delivery_that_fails_does_not_stop_reading_what_the_peer_sent() -> None:
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for message in ({"type": "websocket.connect"}, {"type": "websocket.receive", "text": "{not json"},
                    {"type": "websocket.disconnect", "code": 1000}):
        incoming.put_nowait(message)

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            raise OSError("connection reset by peer")  # the peer has gone

    app = SimpleNamespace(state=SimpleNamespace(experience=SimpleNamespace(settings=Settings())))
    ws = WebSocket({"type": "websocket", "path": "/api/runtime/agent", "headers": [], "app": app},
                   incoming.get, send)
    await ws.accept()
    sock = Socket(ws, read_only=False)

    # The hub delivers an event, the send fails, and the hub closes the socket.
    with pytest.raises(WebSocketDisconnect):
        await sock.send({"type": "execution.accepted", "seq": 1})
    await sock.close(1011, "delivery failed", "unavailable")

    async with asyncio.timeout(5):
        await sock._receive_loop()
    assert incoming.empty(), "the socket stopped reading what its peer had sent"
