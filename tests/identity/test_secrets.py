"""Secrets: never in any log line (DEBUG level, access logs included), and no default
secrets in distributed mode."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import httpx
import pytest
from harness import IntentdProcess, free_port
from identity_helpers import intentd_cli, new_password
from websockets.sync.client import connect

# A URL is enough: the secrets are checked before anything connects.
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/intentd_never_created"


def _secret_fragments(secret: str) -> list[str]:
    """What of a secret must not appear: the whole, and any prefix long enough to matter."""
    if secret.count(".") == 2:  # a JWT: the header is public, the claims and signature are not
        _, claims, signature = secret.split(".")
        return [claims, signature[:12]]
    return [secret, secret[:12]]


def test_full_flow_at_debug_level_logs_no_secret(up_server, tmp_path):
    secret_key, service_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    server = up_server(env={
        "INTENTD_LOG_LEVEL": "DEBUG",
        "INTENTD_SECRET_KEY": secret_key,
        "INTENTD_SERVICE_TOKEN": service_token,
        "INTENTD_OPEN_REGISTRATION": "true",
    })
    url = server.url
    issued = [secret_key, service_token, server.admin_password]

    def remember(tokens: dict) -> dict:
        issued.extend(tokens[key] for key in ("access_token", "refresh_token", "session_token") if key in tokens)
        return tokens

    admin = remember(httpx.post(f"{url}/api/auth/login",
                                json={"email": server.admin_email, "password": server.admin_password}).json())
    admin_headers = {"Authorization": f"Bearer {admin['access_token']}"}
    created_password, registered_password, wrong_password = new_password(), new_password(), new_password()
    issued += [created_password, registered_password, wrong_password]
    assert httpx.post(f"{url}/api/admin/users", headers=admin_headers,
                      json={"email": "made@example.com", "password": created_password}).status_code == 201
    assert httpx.post(f"{url}/api/auth/register",
                      json={"email": "self@example.com", "password": registered_password}).status_code == 201
    assert httpx.post(f"{url}/api/auth/login",
                      json={"email": "made@example.com", "password": wrong_password}).status_code == 401
    user = remember(httpx.post(f"{url}/api/auth/login",
                               json={"email": "self@example.com", "password": registered_password}).json())
    rotated = remember(httpx.post(f"{url}/api/auth/refresh", json={"refresh_token": user["refresh_token"]}).json())
    reused = httpx.post(f"{url}/api/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert reused.json()["code"] == "token_reused"
    user = remember(httpx.post(f"{url}/api/auth/login",
                               json={"email": "self@example.com", "password": registered_password}).json())
    user_headers = {"Authorization": f"Bearer {user['access_token']}"}
    session = remember(httpx.post(f"{url}/api/sessions", headers=user_headers, json={}).json())
    session_headers = {"Authorization": f"Bearer {session['session_token']}"}
    submitted = httpx.post(f"{url}/api/intent/submit", headers=session_headers,
                           json={"intent": "text.stats", "params": {"text": "a b c"}})
    assert submitted.status_code == 202
    httpx.get(f"{url}/api/sessions/{session['session_id']}/events?after_seq=0", headers=session_headers)
    # Tokens in the query string (seed compatibility) and in the first message.
    with connect(f"{server.ws_url}/api/runtime/agent?session_token={session['session_token']}&after_seq=0") as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        ws.send(json.dumps({"type": "message", "id": "m1", "text": "/help"}))
        ws.recv(timeout=10)
    with connect(f"{server.ws_url}/api/ws") as ws:
        ws.send(json.dumps({"type": "auth", "session_token": session["session_token"]}))
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"
    with connect(f"{server.ws_url}/api/ws?session_token=not-a-real-token-{secrets.token_hex(8)}") as ws:
        assert json.loads(ws.recv(timeout=10))["code"] == "unauthorized"
    assert httpx.get(f"{url}/api/admin/audit", headers=admin_headers).status_code == 200
    assert httpx.post(f"{url}/api/auth/logout", headers=user_headers,
                      json={"refresh_token": user["refresh_token"]}).status_code == 204
    assert httpx.get(f"{url}/api/auth/me", headers=user_headers).status_code == 401
    cli_password = new_password()
    issued.append(cli_password)
    cli = intentd_cli("user", "create", "cli@example.com", "--password-stdin", data_dir=server.data_dir,
                      stdin=cli_password + "\n", env={"INTENTD_LOG_LEVEL": "DEBUG"})
    assert cli.returncode == 0, cli.stderr
    server.terminate()

    logs = server.log_text() + cli.stdout + cli.stderr
    # What was checked: DEBUG lines, the access log, the security events.
    assert '"level": "debug"' in logs and '"logger": "uvicorn.access"' in logs
    assert "login.failed" in logs and "token.reused" in logs
    leaked = sorted({fragment for secret in issued + [rotated["access_token"]] for fragment in _secret_fragments(secret)
                     if fragment in logs})
    assert leaked == []
    # A password hash is password material too (offline guessing): no SQL parameter dumps.
    assert "$argon2" not in logs


@pytest.mark.parametrize(
    ("plane", "missing", "env"),
    [
        ("experience", "INTENTD_SECRET_KEY", {"INTENTD_SERVICE_TOKEN": secrets.token_urlsafe(24)}),
        ("runtime", "INTENTD_SECRET_KEY", {"INTENTD_SECRET_KEY": "intentd-embedded-dev-secret-change-me",
                                           "INTENTD_SERVICE_TOKEN": secrets.token_urlsafe(24)}),
        ("runtime", "INTENTD_SERVICE_TOKEN", {"INTENTD_SECRET_KEY": secrets.token_urlsafe(24)}),
        ("experience", "INTENTD_SERVICE_TOKEN", {"INTENTD_SECRET_KEY": secrets.token_urlsafe(24),
                                                 "INTENTD_SERVICE_TOKEN": ""}),
    ],
    ids=["experience-secret-missing", "runtime-secret-default", "runtime-token-missing", "experience-token-empty"],
)
def test_distributed_mode_refuses_default_secrets(tmp_path, plane, missing, env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INTENTD_")}
    clean.update({"INTENTD_DATABASE_URL": POSTGRES_URL, "INTENTD_RUNTIME_URL": "http://127.0.0.1:9", **env})
    result = subprocess.run(
        [sys.executable, "-m", "intentd", "serve", plane, "--host", "127.0.0.1", "--port", str(free_port()),
         "--data-dir", str(tmp_path)],
        env=clean, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode != 0
    assert missing in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_distributed_mode_starts_with_real_secrets(tmp_path, fresh_postgres_url):
    """The control: the same command with proper secrets does start."""
    process = IntentdProcess(
        ["serve", "runtime", "--data-dir", str(tmp_path)],
        log_path=tmp_path / "runtime.log",
        env={
            "INTENTD_DATABASE_URL": fresh_postgres_url(),
            "INTENTD_SECRET_KEY": secrets.token_urlsafe(32),
            "INTENTD_SERVICE_TOKEN": secrets.token_urlsafe(32),
        },
    )
    try:
        process.start(timeout=60)
        assert httpx.get(f"{process.url}/api/runtime/health",
                         headers={"Authorization": f"Bearer {process.env['INTENTD_SERVICE_TOKEN']}"}).status_code == 200
    finally:
        process.stop()
