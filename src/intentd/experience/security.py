"""Browser-facing protections of the Experience plane.

CORS allow-list, security headers on every HTTP response, a request body size
limit (also for chunked bodies that announce no length), JSON body vetting
(nesting depth, 64-bit integers), the Origin check the sockets share with
CORS, and an OpenAPI document that says every error is problem+json.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from intentd.asgi import BodyLimitMiddleware
from intentd.config import Settings
from intentd.problems import PROBLEM_JSON

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


def install_security(app: FastAPI, settings: Settings) -> None:
    """Add the middleware; call once while building the app, before it starts."""
    # Starlette runs the last added middleware first: headers wrap everything
    # (so 413s and CORS preflights carry them too), CORS wraps the limits so a
    # browser can read a 413.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, max_depth=settings.max_json_depth)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_credentials=False,  # bearer tokens, no cookies
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
        expose_headers=["Retry-After", "X-Intentd-Plane", "Location"],
        max_age=600,
    )
    app.add_middleware(SecurityHeadersMiddleware)
    document_problems(app)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                extra = [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_allowed(settings: Settings, origin: str | None, host: str | None = None) -> bool:
    """Whether a browser at ``origin`` may use this server (CORS and the sockets' Origin check).

    No Origin header: a non-browser client, allowed. Otherwise the origin must
    be on ``settings.cors_origins`` (``*`` allows any) or be the server's own,
    judged from the request's ``Host``: same host name, and the same port when
    the Host names one. The scheme is not compared, because behind a TLS
    terminating gateway the page is https while the request arrives as http.
    """
    if origin is None:
        return True
    origin = origin.strip().rstrip("/")
    allowed = settings.cors_origins
    if "*" in allowed or origin in allowed:
        return True
    if not host:
        return False
    try:
        page = urlsplit(origin)
        server = urlsplit(f"//{host.strip()}")
        if page.scheme not in _DEFAULT_PORTS or not page.hostname or not server.hostname:
            return False
        page_port = page.port or _DEFAULT_PORTS[page.scheme]
        server_port = server.port
    except ValueError:
        return False
    if page.hostname != server.hostname:
        return False
    return server_port is None or server_port == page_port


def scope_origin_allowed(settings: Settings, scope: dict[str, Any]) -> bool:
    """``origin_allowed`` for an ASGI scope (HTTP or WebSocket)."""
    headers = {name.lower(): value for name, value in scope.get("headers", ())}
    origin = headers.get(b"origin")
    host = headers.get(b"host")
    return origin_allowed(
        settings,
        origin.decode("latin-1") if origin is not None else None,
        host.decode("latin-1") if host is not None else None,
    )


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string"},
        "detail": {"type": "string"},
    },
    "additionalProperties": True,
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting problem+json answers of a route."""
    return {
        status: {"description": "Problem details (RFC 9457)", "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}}
        for status in statuses
    }


def document_problems(app: FastAPI) -> None:
    """Make the OpenAPI document say what the app does: every error is problem+json.

    FastAPI documents its 422 as ``application/json`` HTTPValidationError, but
    ``install_problem_handlers`` answers problem+json; clients and fuzzers
    that hold the server to its schema need the truth. Every operation also
    gets a ``default`` problem response, since limits (413, 429) and auth
    (401) apply across routes.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        problem = problem_responses(0)[0]
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                responses = operation["responses"]
                if "422" in responses:
                    responses["422"] = {**problem, "description": "Validation error"}
                responses.setdefault("default", problem)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
