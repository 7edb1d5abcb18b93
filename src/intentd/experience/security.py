"""Browser-facing protections of the Experience plane.

CORS allow-list, security headers on every HTTP response, a request body size
limit (also for chunked bodies that announce no length), JSON body vetting
(nesting depth, 64-bit integers), the Origin check the sockets share with
CORS, and an OpenAPI document that says every error is problem+json.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from intentd.config import Settings
from intentd.problems import PROBLEM_JSON, Problem, problem_response

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


class BodyLimitMiddleware:
    """Reads the request body up to ``max_bytes`` before the app sees it.

    The body is at most ``max_bytes`` (1 MiB by default), so holding it is
    cheap, and it lets a JSON body be vetted before any parser sees it: no
    nesting deeper than ``max_depth`` (parsers recurse), no integer beyond
    64 bits (Python parses it, but nothing downstream can store or send it).
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_depth: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _reject(scope, receive, send, _too_large(self.max_bytes))
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                await self.app(scope, _replay(message, receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _reject(scope, receive, send, _too_large(self.max_bytes))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = self._json_problem(body) if body and _is_json(headers.get(b"content-type", b"")) else None
        if problem is not None:
            await _reject(scope, receive, send, problem)
            return
        await self.app(scope, _replay({"type": "http.request", "body": body, "more_body": False}, receive), send)

    def _json_problem(self, body: bytes) -> Problem | None:
        if json_depth_exceeds(body, self.max_depth):
            return Problem(400, "json_too_deep", f"the JSON body is nested deeper than {self.max_depth} levels")
        if json_has_huge_integer(body):
            return Problem(
                422, "invalid_request", "an integer in the body does not fit in 64 bits",
                errors=[{"loc": ["body"], "type": "int_out_of_range", "msg": "integers must fit in 64 bits"}],
            )
        return None


def _replay(first: Message, receive: Receive) -> Receive:
    """A receive that answers ``first`` once, then defers to the real one (disconnects)."""
    pending: list[Message] = [first]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay


def _too_large(max_bytes: int) -> Problem:
    return Problem(413, "body_too_large", f"the request body exceeds {max_bytes} bytes", max_bytes=max_bytes)


async def _reject(scope: Scope, receive: Receive, send: Send, problem: Problem) -> None:
    # Connection: close, so the unread rest of an oversized body is not parsed
    # as the next request.
    response = problem_response(problem)
    if problem.status == 413:
        response.headers["Connection"] = "close"
    await response(scope, receive, send)


def _is_json(content_type: bytes) -> bool:
    # FastAPI parses a body without a Content-Type as JSON too.
    media = content_type.split(b";", 1)[0].strip().lower()
    return not media or media == b"application/json" or media.endswith(b"+json")


_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth_exceeds(text: bytes | str, max_depth: int) -> bool:
    """Whether JSON ``text`` nests arrays/objects deeper than ``max_depth``.

    Brackets inside strings do not count. Valid or not, the text is judged by
    its brackets only: malformed JSON is the parser's to report.
    """
    raw = text.encode() if isinstance(text, str) else text
    # Cheap exit for the common case: not enough brackets to be too deep.
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return False
    depth = 0
    for match in _JSON_TOKENS.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


_LONG_DIGITS = re.compile(rb"\d{19}")
_JSON_STRINGS_AND_INTEGERS = re.compile(rb'"(?:[^"\\]|\\.)*"|-?\d{19,}(?![\d.eE])')
_INT64 = range(-(2**63), 2**63)


def json_has_huge_integer(text: bytes) -> bool:
    """Whether JSON ``text`` has an integer outside the signed 64-bit range (digits inside strings don't count)."""
    if not _LONG_DIGITS.search(text):  # cheap exit: no run of 19 digits anywhere
        return False
    return any(
        not token.startswith(b'"') and int(token) not in _INT64
        for token in (m.group() for m in _JSON_STRINGS_AND_INTEGERS.finditer(text))
    )


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
