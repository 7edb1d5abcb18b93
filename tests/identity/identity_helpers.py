"""A running ``intentd up`` with two tenants and their principals, for the end-to-end identity tests.

Tenant ``default``: its admin (bootstrapped from the environment), ``owner``
(who owns a session and an execution) and ``peer`` (another user of the same
tenant). Tenant ``other``: ``foreign_admin`` and ``foreign_user``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from harness import UpServer
from wsclient import Session  # the session as the wire tests see it

from intentd.config import load_settings
from intentd.experience.users import create_user
from intentd.store import Store

PASSWORD_LENGTH = 18


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_LENGTH)


@dataclass
class Account:
    email: str
    password: str
    tenant_id: str
    role: str
    id: str = ""
    access_token: str = ""
    refresh_token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass
class World:
    server: UpServer
    admin: Account
    owner: Account
    peer: Account
    foreign_admin: Account
    foreign_user: Account
    owner_session: Session
    peer_session: Session
    foreign_session: Session
    owner_execution: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ws_url(self) -> str:
        return self.server.ws_url


def login(url: str, account: Account) -> Account:
    response = httpx.post(f"{url}/api/auth/login", json={"email": account.email, "password": account.password})
    assert response.status_code == 200, response.text
    tokens = response.json()
    account.access_token = tokens["access_token"]
    account.refresh_token = tokens["refresh_token"]
    me = httpx.get(f"{url}/api/auth/me", headers=account.headers)
    assert me.status_code == 200, me.text
    account.id = me.json()["id"]
    return account


def admin_creates(url: str, admin: Account, email: str, role: str = "user") -> Account:
    account = Account(email, new_password(), admin.tenant_id, role)
    response = httpx.post(
        f"{url}/api/admin/users", headers=admin.headers,
        json={"email": email, "password": account.password, "role": role},
    )
    assert response.status_code == 201, response.text
    return login(url, account)


def create_in_store(data_dir: Path, email: str, tenant_id: str, role: str) -> Account:
    """A user of another tenant, written straight into the server's store (as `intentd user create` does)."""
    account = Account(email, new_password(), tenant_id, role)

    async def run() -> None:
        store = Store(load_settings({}, data_dir=data_dir).app_database_url)
        try:
            await create_user(store, email=email, password=account.password, tenant_id=tenant_id, role=role)
        finally:
            await store.close()

    asyncio.run(run())
    return account


def open_session(url: str, account: Account) -> Session:
    response = httpx.post(f"{url}/api/sessions", headers=account.headers, json={"metadata": {"who": account.email}})
    assert response.status_code == 201, response.text
    body = response.json()
    return Session(body["session_id"], body["session_token"])


def submit(url: str, session: Session, intent: str = "text.stats", params: dict[str, Any] | None = None) -> str:
    response = httpx.post(
        f"{url}/api/intent/submit", headers=session.headers,
        json={"intent": intent, "params": params if params is not None else {"text": "alpha beta alpha"}},
    )
    assert response.status_code == 202, response.text
    return response.json()["execution_id"]


def wait_finished(url: str, session: Session, execution_id: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        execution = httpx.get(f"{url}/api/intent/executions/{execution_id}", headers=session.headers).json()
        if execution.get("status") in ("completed", "failed", "cancelled") or time.monotonic() > deadline:
            return execution
        time.sleep(0.1)


def build_world(server: UpServer) -> World:
    """Start ``server`` and populate both tenants."""
    server.start()
    url = server.url
    admin = login(url, Account(server.admin_email, server.admin_password, "default", "admin"))
    owner = admin_creates(url, admin, "owner@example.com")
    peer = admin_creates(url, admin, "peer@example.com")
    foreign_admin = login(url, create_in_store(server.data_dir, "boss@other.example", "other", "admin"))
    foreign_user = login(url, create_in_store(server.data_dir, "user@other.example", "other", "user"))
    owner_session = open_session(url, owner)
    execution_id = submit(url, owner_session)
    assert wait_finished(url, owner_session, execution_id)["status"] == "completed"
    world = World(
        server=server, admin=admin, owner=owner, peer=peer, foreign_admin=foreign_admin,
        foreign_user=foreign_user, owner_session=owner_session, peer_session=open_session(url, peer),
        foreign_session=open_session(url, foreign_user), owner_execution=execution_id,
    )
    return world


def intentd_cli(*args: str, data_dir: Path, stdin: str | None = None, env: dict[str, str] | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the `intentd` CLI like a user would, without the developer's INTENTD_* variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INTENTD_")}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "intentd", *args, "--data-dir", str(data_dir)],
        input=stdin, capture_output=True, text=True, timeout=timeout, env=clean, check=False,
    )


def inside_one_window(window: float = 60.0, needed: float = 15.0) -> None:
    """Wait, if need be, so the next ``needed`` seconds fall inside one fixed rate-limit window.

    The limits count in windows aligned to the clock (as Redis keys are); a
    test that counts up to a limit must not straddle a window boundary.
    """
    left = window - time.time() % window
    if left < needed:
        time.sleep(left + 0.05)


# The browser origin the identity tests allow (INTENTD_CORS_ORIGINS).
CONSOLE_ORIGIN = "http://console.example.com"
