"""Small ASGI middlewares both planes use."""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from intentd.gateway.contract import PLANE_HEADER
from intentd.problems import Problem, problem_response


class PlaneHeaderMiddleware:
    """Every HTTP response names the plane that served it (for `intentd verify` and people)."""

    def __init__(self, app: ASGIApp, plane: str) -> None:
        self.app = app
        self.header = (PLANE_HEADER.lower().encode(), plane.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], self.header]
            await send(message)

        await self.app(scope, receive, send_with_header)


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
