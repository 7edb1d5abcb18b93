"""The `messages` baseline: a bare ASGI WebSocket echo app on intentd's server stack.

Served by ``intentd.server.uvicorn_config`` (the very function the product
uses: websockets-sansio, uvloop, httptools, no per-message deflate), so the
only difference from intentd is the application.

    python -m intentd.bench.echo_app --port 9000
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn

from intentd.config import Settings
from intentd.server import uvicorn_config

Scope = dict[str, Any]


async def echo_app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":  # readiness probe
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})
    elif scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.Server(uvicorn_config(echo_app, args.host, args.port, Settings())).run()


if __name__ == "__main__":
    main()
