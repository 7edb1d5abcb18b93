"""Structured logging (structlog, JSON) with secrets scrubbed from every line.

Scrubbing happens in one place, the handler's filter, so it covers our own
events, uvicorn's access log and any library that logs through stdlib logging.
"""

from __future__ import annotations

import logging
import re
import sys

import structlog

# Query parameters, JSON fields and headers that carry credentials.
_SECRET_PATTERNS = (
    re.compile(r"((?:session_token|access_token|refresh_token|service_token|token|password|secret|api_key)=)[^&\s\"']+", re.I),
    re.compile(r"(\"(?:session_token|access_token|refresh_token|service_token|token|password|secret|api_key|authorization)\"\s*:\s*\")[^\"]*", re.I),
    re.compile(r"((?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]+", re.I),
)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


_SECRET_KEYS = frozenset(
    {"password", "token", "session_token", "access_token", "refresh_token", "secret", "secret_key",
     "service_token", "api_key", "authorization"}
)


class RedactingFilter(logging.Filter):
    """Scrubs plain stdlib records; structlog's own records were scrubbed by ``_redact_event``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict):
            return True
        message = record.getMessage()
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        return True


def _scrub(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: REDACTED if str(k).lower() in _SECRET_KEYS else _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def _redact_event(_: object, __: str, event_dict: dict) -> dict:
    return _scrub(event_dict)  # type: ignore[return-value]


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact_event,
    ]
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        adopt_logger(name)
    # SQL logging carries parameters (password and token hashes): never below
    # WARNING. Libraries whose DEBUG output carries raw frames: never below INFO.
    for name in ("aiosqlite", "sqlalchemy", "asyncpg"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    for name in ("websockets", "httpcore", "httpx", "redis"):
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))


def adopt_logger(name: str, level: str | None = None) -> None:
    """Route a library logger that installed its own handlers through ours (JSON, redaction)."""
    logger = logging.getLogger(name)
    logger.handlers[:] = []
    logger.propagate = True
    if level is not None:
        logger.setLevel(level)
