"""Secrets never reach a log line, whatever shape they are logged in."""

from __future__ import annotations

import logging

import structlog

from intentd.logs import configure_logging


def test_secrets_are_redacted_in_structured_nested_and_plain_records(capsys) -> None:
    configure_logging("DEBUG")
    structlog.get_logger("t").info(
        "login", body={"password": "hunter2", "nested": [{"token": "abc123"}]}, url="/x?session_token=zzz999"
    )
    logging.getLogger("plain").info("header %s", "Authorization: Bearer sekrit123")
    access = logging.getLogger("uvicorn.access")
    access.disabled = False  # another test in this worker may have run uvicorn's own dictConfig
    access.setLevel(logging.NOTSET)
    access.info('127.0.0.1 - "GET /api/ws?session_token=qqq777 HTTP/1.1" 101')
    err = capsys.readouterr().err
    for secret in ("hunter2", "abc123", "zzz999", "sekrit123", "qqq777"):
        assert secret not in err
    assert err.count("[redacted]") >= 5, err
    assert '"event": "login"' in err, "a structured record with a nested secret is still logged"
