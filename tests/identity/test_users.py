"""`intentd user create|list|disable` as real subprocesses, and the bootstrap admin."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import redis
from identity_helpers import Account, intentd_cli, login, new_password

from intentd.bus import CONTROL
from intentd.bus.redis import channel_prefix
from intentd.config import load_settings
from intentd.experience.users import (
    DEFAULT_ADMIN_EMAIL,
    ensure_admin,
    get_user_by_email,
    hash_password,
    verify_password,
)
from intentd.store import Store
from intentd.store.migrate import upgrade_async


def test_create_list_disable_on_a_fresh_data_dir(tmp_path):
    data_dir = tmp_path / "data"
    password = new_password()
    created = intentd_cli("user", "create", "Ops@Example.com", "--tenant", "acme", "--admin", "--password-stdin",
                          data_dir=data_dir, stdin=password + "\n")
    assert created.returncode == 0, created.stderr
    assert "ops@example.com" in created.stdout and "acme" in created.stdout and "admin" in created.stdout
    assert password not in created.stdout + created.stderr

    prompted = intentd_cli("user", "create", "dev@example.com", data_dir=data_dir,
                           stdin=f"{password}\n{password}\n")
    assert prompted.returncode == 0, prompted.stderr + prompted.stdout

    duplicate = intentd_cli("user", "create", "ops@example.com", "--password-stdin", data_dir=data_dir,
                            stdin=password + "\n")
    assert duplicate.returncode != 0 and "exists" in duplicate.stderr
    weak = intentd_cli("user", "create", "weak@example.com", "--password-stdin", data_dir=data_dir, stdin="short\n")
    assert weak.returncode != 0 and "8 characters" in weak.stderr
    bad_tenant = intentd_cli("user", "create", "t@example.com", "--tenant", "no spaces!", "--password-stdin",
                             data_dir=data_dir, stdin=password + "\n")
    assert bad_tenant.returncode != 0

    listed = intentd_cli("user", "list", data_dir=data_dir)
    assert listed.returncode == 0
    rows = {line.split()[1]: line for line in listed.stdout.splitlines() if "@example.com" in line}
    assert set(rows) == {"ops@example.com", "dev@example.com"}
    assert "acme" in rows["ops@example.com"] and "admin" in rows["ops@example.com"]
    assert "default" in rows["dev@example.com"] and " user " in rows["dev@example.com"]

    disabled = intentd_cli("user", "disable", "dev@example.com", data_dir=data_dir)
    assert disabled.returncode == 0, disabled.stderr
    after = intentd_cli("user", "list", data_dir=data_dir).stdout
    assert next(line for line in after.splitlines() if "dev@example.com" in line).split()[7] == "yes"
    missing = intentd_cli("user", "disable", "nobody@example.com", data_dir=data_dir)
    assert missing.returncode != 0 and "no user" in missing.stderr


def test_cli_against_a_running_server(up_server):
    server = up_server()
    password = new_password()
    created = intentd_cli("user", "create", "cli@example.com", "--password-stdin", data_dir=server.data_dir,
                          stdin=password + "\n")
    assert created.returncode == 0, created.stderr
    account = login(server.url, Account("cli@example.com", password, "default", "user"))
    assert intentd_cli("user", "disable", "cli@example.com", data_dir=server.data_dir).returncode == 0
    # The running server's credential cache lives at most a second.
    deadline = time.monotonic() + 3
    while httpx.get(f"{server.url}/api/auth/me", headers=account.headers).status_code == 200:
        assert time.monotonic() < deadline, "the disabled user's token still works"
        time.sleep(0.1)
    refused = httpx.post(f"{server.url}/api/auth/login", json={"email": account.email, "password": password})
    assert refused.status_code == 401


def test_cli_disable_announces_on_the_shared_bus(tmp_path, redis_url):
    """With Redis configured, running replicas hear `user.disabled` (and close sockets)."""
    data_dir = tmp_path / "data"
    password = new_password()
    assert intentd_cli("user", "create", "bus@example.com", "--password-stdin", data_dir=data_dir,
                       stdin=password + "\n").returncode == 0
    heard: list[dict] = []
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel_prefix(redis_url) + CONTROL)
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.2)
            if message is not None:
                heard.append(json.loads(message["data"]))

    listener = threading.Thread(target=listen)
    listener.start()
    try:
        result = intentd_cli("user", "disable", "bus@example.com", data_dir=data_dir,
                             env={"INTENTD_REDIS_URL": redis_url})
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 5
        while not any(m.get("type") == "user.disabled" for m in heard) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        listener.join()
        pubsub.close()
        client.close()
    user_ids = [m["user_id"] for m in heard if m.get("type") == "user.disabled"]
    assert len(user_ids) == 1 and len(user_ids[0]) == 36


async def _store(tmp_path, **overrides):
    settings = load_settings({}, data_dir=tmp_path, **overrides)
    store = Store(settings.app_database_url)
    await upgrade_async(settings.app_database_url)
    return settings, store


async def test_bootstrap_admin_is_generated_once(tmp_path):
    settings, store = await _store(tmp_path)
    try:
        generated = await ensure_admin(store, settings)
        assert generated is not None and len(generated) >= 16
        admin = await get_user_by_email(store, DEFAULT_ADMIN_EMAIL)
        assert admin is not None and admin.role == "admin" and admin.tenant_id == "default"
        assert await verify_password(admin.password_hash, generated)
        assert await ensure_admin(store, settings) is None  # second start: nothing new, nothing printed
    finally:
        await store.close()


async def test_bootstrap_admin_from_the_environment_is_never_overwritten(tmp_path):
    password = new_password()
    settings, store = await _store(tmp_path, admin_email="Root@Example.com", admin_password=password)
    try:
        assert await ensure_admin(store, settings) is None  # the password was given: nothing to print
        admin = await get_user_by_email(store, "root@example.com")
        assert admin is not None and admin.role == "admin"
        assert await verify_password(admin.password_hash, password)
        changed = settings.model_copy(update={"admin_password": new_password()})
        assert await ensure_admin(store, changed) is None
        assert await verify_password((await get_user_by_email(store, "root@example.com")).password_hash, password)
    finally:
        await store.close()


async def test_bootstrap_with_only_an_email_generates_its_password(tmp_path):
    settings, store = await _store(tmp_path, admin_email="ops@example.com")
    try:
        generated = await ensure_admin(store, settings)
        assert generated is not None
        assert await verify_password((await get_user_by_email(store, "ops@example.com")).password_hash, generated)
    finally:
        await store.close()


async def test_password_hashing_never_waits_on_the_shared_default_executor() -> None:
    # Once DBOS runs, the default executor is its few threads: a burst of
    # logins must not queue the runtime's database work there.
    class Refusing(ThreadPoolExecutor):
        def submit(self, *args, **kwargs):
            raise AssertionError("hashing went to the loop's default executor")

    asyncio.get_running_loop().set_default_executor(Refusing(1))
    hashed = await hash_password("correct horse battery")
    assert await verify_password(hashed, "correct horse battery")
    assert not await verify_password(hashed, "wrong horse battery")
    assert not await verify_password(None, "correct horse battery")
