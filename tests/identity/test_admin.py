"""The admin API against a real `intentd up`: users, sessions, executions, routes, stats, audit."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import websockets
from identity_helpers import (
    World,
    admin_creates,
    login,
    open_session,
    submit,
    wait_finished,
)
from websockets.exceptions import ConnectionClosed

CLOSE_DEADLINE = 1.0  # DESIGN §4: revoked sessions' sockets close within 1 s


async def _ready_socket(world: World, session_token: str, path: str = "/api/runtime/agent") -> websockets.ClientConnection:
    ws = await websockets.connect(f"{world.ws_url}{path}?session_token={session_token}")
    ready = json.loads(await ws.recv())
    assert ready["type"] == "ready"
    return ws


async def _closed_with(ws: websockets.ClientConnection, since: float) -> tuple[int | None, list[dict], float]:
    """Read until the server closes: (close code, messages seen, seconds from ``since`` to the close)."""
    seen = []
    try:
        async with asyncio.timeout(5):
            while True:
                seen.append(json.loads(await ws.recv()))
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None, seen, time.monotonic() - since
    return None, seen, time.monotonic() - since


async def _patch(world: World, user_id: str, body: dict) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.patch(f"{world.url}/api/admin/users/{user_id}", headers=world.admin.headers, json=body)


async def test_disabling_a_user_revokes_everything_and_closes_sockets_within_a_second(world: World):
    victim = admin_creates(world.url, world.admin, "victim@example.com")
    first, second = open_session(world.url, victim), open_session(world.url, victim)
    sockets = [
        await _ready_socket(world, first.session_token),
        await _ready_socket(world, second.session_token, "/api/ws"),
    ]
    bystander = await _ready_socket(world, world.peer_session.session_token)
    disabled_at = time.monotonic()
    response = await _patch(world, victim.id, {"disabled": True})
    assert response.status_code == 200 and response.json()["disabled"] is True
    for ws in sockets:
        code, seen, took = await _closed_with(ws, disabled_at)
        assert code == 4401
        assert took < CLOSE_DEADLINE
        assert seen[-1:] and seen[-1]["type"] == "error" and seen[-1]["code"] == "unauthorized"
    # Other users' sockets are untouched.
    await bystander.send(json.dumps({"type": "ping", "id": "still-there"}))
    assert json.loads(await bystander.recv()) == {"type": "pong", "id": "still-there"}
    await bystander.close()


def test_a_disabled_user_has_no_way_back_in(world: World):
    victim = admin_creates(world.url, world.admin, "locked-out@example.com")
    session = open_session(world.url, victim)
    disabled = httpx.patch(f"{world.url}/api/admin/users/{victim.id}", headers=world.admin.headers,
                           json={"disabled": True})
    assert disabled.status_code == 200
    assert httpx.get(f"{world.url}/api/auth/me", headers=victim.headers).status_code == 401
    assert httpx.get(f"{world.url}/api/sessions/{session.session_id}", headers=session.headers).status_code == 401
    refresh = httpx.post(f"{world.url}/api/auth/refresh", json={"refresh_token": victim.refresh_token})
    assert refresh.status_code == 401
    relogin = httpx.post(f"{world.url}/api/auth/login", json={"email": victim.email, "password": victim.password})
    assert relogin.status_code == 401 and relogin.json()["code"] == "invalid_credentials"
    # Enabling again lets them log in; the old tokens and sessions stay revoked.
    enabled = httpx.patch(f"{world.url}/api/admin/users/{victim.id}", headers=world.admin.headers,
                          json={"disabled": False})
    assert enabled.json()["disabled"] is False
    login(world.url, victim)
    assert httpx.get(f"{world.url}/api/sessions/{session.session_id}", headers=session.headers).status_code == 401


async def test_revoking_a_session_closes_its_sockets_within_a_second(world: World):
    session = open_session(world.url, world.peer)
    ws = await _ready_socket(world, session.session_token)
    async with httpx.AsyncClient(base_url=world.url, headers=world.admin.headers) as client:
        revoked_at = time.monotonic()
        response = await client.delete(f"/api/admin/sessions/{session.session_id}")
        assert response.status_code == 204
        code, _, took = await _closed_with(ws, revoked_at)
        assert code == 4401 and took < CLOSE_DEADLINE
        params = {"user_id": world.peer.id, "active": "false"}
        listed = (await client.get("/api/admin/sessions", params=params)).json()["items"]
        assert session.session_id in {item["session_id"] for item in listed}
        params = {"user_id": world.peer.id, "active": "true"}
        active = (await client.get("/api/admin/sessions", params=params)).json()["items"]
    assert session.session_id not in {item["session_id"] for item in active}
    assert all(item["user_id"] == world.peer.id for item in active)


def test_role_changes_take_effect_on_existing_tokens(world: World):
    helper = admin_creates(world.url, world.admin, "helper@example.com")
    assert httpx.get(f"{world.url}/api/admin/users", headers=helper.headers).status_code == 403
    promoted = httpx.patch(f"{world.url}/api/admin/users/{helper.id}", headers=world.admin.headers, json={"role": "admin"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    time.sleep(1.1)  # other replicas' caches: at most 1 s
    assert httpx.get(f"{world.url}/api/admin/users", headers=helper.headers).status_code == 200
    httpx.patch(f"{world.url}/api/admin/users/{helper.id}", headers=world.admin.headers, json={"role": "user"})
    assert httpx.get(f"{world.url}/api/admin/users", headers=helper.headers).status_code == 403


def test_admin_cannot_lock_themselves_out(world: World):
    for body in ({"disabled": True}, {"role": "user"}):
        response = httpx.patch(f"{world.url}/api/admin/users/{world.admin.id}", headers=world.admin.headers, json=body)
        assert response.status_code == 409 and response.json()["code"] == "cannot_modify_self"


def test_user_creation_validates(world: World):
    url = f"{world.url}/api/admin/users"
    taken = httpx.post(url, headers=world.admin.headers, json={"email": "OWNER@example.com", "password": "long enough pw"})
    assert taken.status_code == 409 and taken.json()["code"] == "email_taken"
    weak = httpx.post(url, headers=world.admin.headers, json={"email": "w@example.com", "password": "short"})
    assert weak.status_code == 422 and weak.json()["code"] == "weak_password"
    bad_role = httpx.post(url, headers=world.admin.headers, json={"email": "r@example.com", "password": "long enough pw", "role": "root"})
    assert bad_role.status_code == 422 and bad_role.json()["code"] == "invalid_request"
    missing = httpx.patch(f"{url}/no-such-user", headers=world.admin.headers, json={"role": "user"})
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_executions_list_filter_page_detail_cancel_retry(world: World):
    url, admin = world.url, world.admin.headers
    session = open_session(url, world.peer)
    waiting = submit(url, session, "wait", {"seconds": 30})
    done = submit(url, session, "text.stats", {"text": "one two two"})
    assert wait_finished(url, session, done)["status"] == "completed"

    mine = httpx.get(f"{url}/api/admin/executions", headers=admin, params={"user_id": world.peer.id}).json()
    assert {waiting, done} <= {item["execution_id"] for item in mine["items"]}
    completed = httpx.get(
        f"{url}/api/admin/executions", headers=admin, params={"status": "completed", "intent": "text.stats"}
    ).json()["items"]
    assert done in {item["execution_id"] for item in completed}
    assert all(item["status"] == "completed" and item["intent"] == "text.stats" for item in completed)
    later = httpx.get(f"{url}/api/admin/executions", headers=admin, params={"created_after": time.time() + 60}).json()
    assert later["items"] == []

    seen, cursor = [], None
    for _ in range(50):  # page one item at a time
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{url}/api/admin/executions", headers=admin, params=params).json()
        seen += [item["execution_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) and {waiting, done, world.owner_execution} <= set(seen)

    detail = httpx.get(f"{url}/api/admin/executions/{done}", headers=admin).json()
    assert detail["result"]["words"] == 3
    assert detail["events"][0]["type"] == "execution.accepted"
    assert detail["events"][-1]["type"] == "execution.completed"

    cancelled = httpx.post(f"{url}/api/admin/executions/{waiting}/cancel", headers=admin)
    assert cancelled.status_code == 202
    assert wait_finished(url, session, waiting, timeout=10)["status"] == "cancelled"

    retried = httpx.post(f"{url}/api/admin/executions/{done}/retry", headers=admin)
    assert retried.status_code == 202 and retried.json()["retry_of"] == done
    again = retried.json()["execution_id"]
    assert again != done
    finished = wait_finished(url, session, again)
    assert finished["status"] == "completed" and finished["retry_of"] == done
    assert finished["params"] == {"text": "one two two"} and finished["intent"] == "text.stats"


def test_routes_show_the_contract_and_the_check(world: World):
    body = httpx.get(f"{world.url}/api/admin/routes", headers=world.admin.headers).json()
    by_prefix = {entry["prefix"]: entry for entry in body["contract"]}
    assert by_prefix["/api/runtime/agent"]["owner"] == "experience"
    assert by_prefix["/api/runtime"]["owner"] == "runtime"
    assert by_prefix["/api/runtime/agent"]["priority"] > by_prefix["/api/runtime"]["priority"]
    assert body["check"] == {"ok": True, "problems": []}  # the running planes serve the contract


async def test_stats_count_live_sockets_and_sessions(world: World):
    async def stats(account=world.admin) -> dict:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{world.url}/api/admin/stats", headers=account.headers)).json()

    before = await stats()
    session = open_session(world.url, world.peer)
    ws = await _ready_socket(world, session.session_token)
    during = await stats()
    assert during["sockets"] == before["sockets"] + 1
    assert during["sessions_active"] == before["sessions_active"] + 1
    assert during["executions_by_status"]["completed"] >= 1
    assert during["events_per_second"] >= 0
    foreign = await stats(world.foreign_admin)
    assert foreign["sockets"] == 0
    await ws.close()


def test_audit_log_records_admin_actions_and_security_events(world: World):
    url, admin = world.url, world.admin.headers
    bad = httpx.post(f"{url}/api/auth/login", json={"email": world.peer.email, "password": "wrong password!"})
    assert bad.status_code == 401
    spare = admin_creates(url, world.admin, "spare@example.com")
    httpx.patch(f"{url}/api/admin/users/{spare.id}", headers=admin, json={"disabled": True})

    def actions(**params) -> list[dict]:
        response = httpx.get(f"{url}/api/admin/audit", headers=admin, params=params)
        assert response.status_code == 200, response.text
        return response.json()["items"]

    items = actions(limit=500)
    kinds = {item["action"] for item in items}
    assert {"user.created", "user.disabled", "login.succeeded", "login.failed"} <= kinds
    failed = [item for item in items if item["action"] == "login.failed" and item["target"] == world.peer.id]
    assert failed and failed[0]["ip"] == "127.0.0.1" and failed[0]["actor_id"] is None
    disabled = actions(action="user.disabled")
    assert disabled and {item["action"] for item in disabled} == {"user.disabled"}
    assert disabled[0]["target"] == spare.id and disabled[0]["actor_id"] == world.admin.id
    # Paged newest first, without overlap.
    first = httpx.get(f"{url}/api/admin/audit", headers=admin, params={"limit": 2}).json()
    second = httpx.get(f"{url}/api/admin/audit", headers=admin, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert first["items"][-1]["id"] > second["items"][0]["id"]
    text = json.dumps(items)
    assert spare.password not in text and world.admin.access_token not in text


def test_audit_cursor_must_be_one_the_api_gave(world: World):
    for cursor in ("x", "³", "-1", "9" * 30):
        response = httpx.get(f"{world.url}/api/admin/audit", headers=world.admin.headers, params={"cursor": cursor})
        assert response.status_code == 422 and response.json()["code"] == "invalid_request", cursor
