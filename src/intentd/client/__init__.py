"""The intentd Python SDK: REST client and agent socket.

It imports nothing of the server side (httpx, websockets and the standard
library only), so it installs and runs on its own::

    async with AsyncClient("http://127.0.0.1:8000") as client:
        await client.login(email, password)
        await client.create_session()
        async with await client.connect_agent() as sock:
            await sock.send_message("/help")
            async for event in sock:
                if event["type"] == "agent.message":
                    print(event["data"]["text"])
                    break
"""

from intentd.client.agent_socket import AgentSocket, Backoff
from intentd.client.errors import (
    ConnectionFailed,
    Disconnected,
    IntentdError,
    OriginRejected,
    ProtocolViolation,
    SessionRevoked,
    SocketClosed,
)
from intentd.client.http import AsyncClient

__all__ = [
    "AgentSocket",
    "AsyncClient",
    "Backoff",
    "ConnectionFailed",
    "Disconnected",
    "IntentdError",
    "OriginRejected",
    "ProtocolViolation",
    "SessionRevoked",
    "SocketClosed",
]
