"""Errors the SDK raises. Every one is an ``IntentdError`` with a stable ``code``."""

from __future__ import annotations

from typing import Any


class IntentdError(Exception):
    """An error answer: ``status`` is the HTTP status (None on the socket), ``code`` the stable code."""

    def __init__(self, status: int | None, code: str, detail: str, problem: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {detail}" if status is None else f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.problem = problem or {}


class ConnectionFailed(IntentdError):
    """No base URL could be reached."""

    def __init__(self, detail: str) -> None:
        super().__init__(None, "unreachable", detail)


class Disconnected(IntentdError):
    """The socket dropped before a request that cannot be safely re-sent was answered."""

    def __init__(self, detail: str = "the connection dropped before the server answered") -> None:
        super().__init__(None, "disconnected", detail)


class SocketClosed(IntentdError):
    """The server closed the socket for good; reconnecting would not help."""

    def __init__(self, close_code: int | None, code: str, detail: str) -> None:
        super().__init__(None, code, detail)
        self.close_code = close_code


class SessionRevoked(SocketClosed):
    """Close 4401: the session token is missing, invalid, expired or revoked."""


class OriginRejected(SocketClosed):
    """Close 4403: the origin is not allowed, or the session belongs to another tenant."""


class ProtocolViolation(SocketClosed):
    """Close 4400 (repeated protocol errors) or 1009 (frame too big): a client bug."""
