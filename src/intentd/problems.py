"""RFC 9457 problem details with a stable ``code``, shared by both planes."""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

PROBLEM_JSON = "application/problem+json"

log = structlog.get_logger("intentd.http")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    426: "upgrade_required",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
}


class Problem(Exception):
    """An error the API reports as problem+json."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {
            "type": f"https://intentd.dev/problems/{self.code}",
            "title": self.code.replace("_", " "),
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
            **self.extra,
        }


def problem_response(problem: Problem) -> Response:
    return Response(
        orjson.dumps(problem.body()),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def field_errors(errors: Any) -> list[dict[str, Any]]:
    """Pydantic errors reduced to what a client needs: where, what, why."""
    return [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "type": err.get("type", "invalid"),
            "msg": err.get("msg", ""),
        }
        for err in errors
    ]


def invalid_request(errors: Any) -> Problem:
    return Problem(422, "invalid_request", "the request failed validation", errors=field_errors(errors))


_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, OSError)


def problem_of(exc: Exception) -> Problem:
    """The answer to a request that raised ``exc``."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, _UNAVAILABLE):
        # The database (or another dependency) is unreachable: say so at once,
        # and let the client retry, rather than hang or answer 500.
        return Problem(503, "unavailable", f"a dependency is unreachable ({type(exc).__name__}); retry shortly",
                       headers={"Retry-After": "2"})
    log.error("unhandled error", error=type(exc).__name__, exc_info=exc)
    return Problem(500, "internal_error", "an unexpected error occurred; it has been logged")


def install_problem_handlers(app: FastAPI) -> None:
    """Every error the app answers with, including the framework's, becomes problem+json."""

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> Response:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        if any(err.get("type") == "json_invalid" for err in errors):
            return problem_response(Problem(400, "malformed_json", "the request body is not valid JSON"))
        return problem_response(invalid_request(errors))

    @app.exception_handler(sa_exc.OperationalError)
    @app.exception_handler(sa_exc.InterfaceError)
    @app.exception_handler(sa_exc.TimeoutError)
    @app.exception_handler(OSError)
    @app.exception_handler(Exception)
    async def _failed(_: Request, exc: Exception) -> Response:
        return problem_response(problem_of(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        code = _STATUS_CODES.get(exc.status_code, "error")
        detail = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return problem_response(Problem(exc.status_code, code, detail, headers=dict(exc.headers or {})))
