"""A stand-in plane for proxy-routing tests: answers every path, naming itself.

Run with ``STUB_PLANE=experience python -m uvicorn stub_plane:app``. It only
tells which backend a request reached (HTTP: the plane header and a JSON echo;
WebSocket: accept, then echo), so a test can check a rendered proxy config with
a real nginx or Traefik in front. The real planes are tested through nginx in
test_nginx_e2e.py.
"""

from __future__ import annotations

import os

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from intentd.gateway.contract import PLANE_HEADER

PLANE = os.environ["STUB_PLANE"]
app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.api_route("/{path:path}", methods=["GET", "POST", "HEAD"])
async def anything(path: str, request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse(
        {
            "plane": PLANE,
            "path": "/" + path,
            "query": request.url.query,
            "bytes": len(body),
            "forwarded_for": request.headers.get("x-forwarded-for"),
            "forwarded_proto": request.headers.get("x-forwarded-proto"),
        },
        headers={PLANE_HEADER: PLANE},
    )


@app.websocket("/{path:path}")
async def echo(socket: WebSocket, path: str) -> None:
    await socket.accept()
    await socket.send_json({"plane": PLANE, "path": "/" + path})
    try:
        while True:
            await socket.send_text(await socket.receive_text())
    except WebSocketDisconnect:
        pass
