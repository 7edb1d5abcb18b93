"""Tenant isolation over every route, against a real `intentd up`.

Three principals are tried on every route that names an object: the owner,
another user of the same tenant, and the admin of another tenant (plus, where
it matters, a user of the other tenant, another session's token and the
tenant's own admin). Another tenant's object is a 404, exactly like a missing
one; a non-admin on an admin route is a 403.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets
from identity_helpers import World, open_session, submit, wait_finished

OWNER, PEER, FOREIGN_ADMIN, FOREIGN_USER, PEER_SESSION, ADMIN, OWNER_SESSION = (
    "owner", "peer", "foreign_admin", "foreign_user", "peer_session", "admin", "owner_session",
)


def headers(world: World, who: str) -> dict[str, str]:
    return {
        OWNER: world.owner.headers,
        PEER: world.peer.headers,
        FOREIGN_ADMIN: world.foreign_admin.headers,
        FOREIGN_USER: world.foreign_user.headers,
        PEER_SESSION: world.peer_session.headers,
        ADMIN: world.admin.headers,
        OWNER_SESSION: world.owner_session.headers,
    }[who]


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # with {sid}, {eid}, {uid} for the owner's session, execution, user id
    expect: dict[str, int]  # principal -> status
    body: dict[str, Any] | None = None

    @property
    def template(self) -> str:
        return (
            self.path.replace("{sid}", "{session_id}").replace("{eid}", "{execution_id}").replace("{uid}", "{user_id}")
        )


HIDDEN = {PEER: 404, FOREIGN_ADMIN: 404, FOREIGN_USER: 404, PEER_SESSION: 404}
ADMIN_ONLY = {OWNER: 403, PEER: 403, FOREIGN_USER: 403, FOREIGN_ADMIN: 404, ADMIN: 200}

CASES = [
    Case("GET", "/api/sessions/{sid}", {OWNER: 200, OWNER_SESSION: 200, **HIDDEN}),
    Case("GET", "/api/sessions/{sid}/context", {OWNER: 200, OWNER_SESSION: 200, **HIDDEN}),
    Case("PATCH", "/api/sessions/{sid}/context", {OWNER: 200, **HIDDEN}, {"context": {"k": 1}}),
    Case("GET", "/api/sessions/{sid}/events", {OWNER: 200, OWNER_SESSION: 200, **HIDDEN}),
    Case("GET", "/api/intent/executions/{eid}", {OWNER: 200, OWNER_SESSION: 200, **HIDDEN}),
    Case("POST", "/api/intent/executions/{eid}/cancel", {OWNER: 202, OWNER_SESSION: 202, **HIDDEN}),
    Case("GET", "/api/admin/executions/{eid}", ADMIN_ONLY),
    Case("POST", "/api/admin/executions/{eid}/cancel", {**ADMIN_ONLY, ADMIN: 202}),
    Case("POST", "/api/admin/executions/{eid}/retry", {**ADMIN_ONLY, ADMIN: 202}),
    Case("PATCH", "/api/admin/users/{uid}", ADMIN_ONLY, {"role": "user"}),
    Case("GET", "/api/runtime/executions/{eid}", {OWNER: 403, PEER: 403, FOREIGN_ADMIN: 404, ADMIN: 200}),
    Case("GET", "/api/runtime/executions/{eid}/events", {OWNER: 403, PEER: 403, FOREIGN_ADMIN: 404, ADMIN: 200}),
    Case("POST", "/api/runtime/executions/{eid}/cancel", {OWNER: 403, PEER: 403, FOREIGN_ADMIN: 404, ADMIN: 202}),
]
# Revoking is destructive: each principal gets a fresh session of the owner to try.
REVOKING = [
    Case("DELETE", "/api/sessions/{sid}", {**HIDDEN, OWNER: 204}),
    Case("DELETE", "/api/admin/sessions/{sid}", {**ADMIN_ONLY, ADMIN: 204}),
]


def _fill(world: World, case: Case, session_id: str | None = None) -> str:
    return (
        case.path.replace("{sid}", session_id or world.owner_session.session_id)
        .replace("{eid}", world.owner_execution)
        .replace("{uid}", world.owner.id)
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.path}")
def test_object_routes_hide_other_owners_objects(world: World, case: Case):
    for who, status in case.expect.items():
        response = httpx.request(
            case.method, world.url + _fill(world, case), headers=headers(world, who), json=case.body
        )
        assert response.status_code == status, f"{who}: {response.status_code} {response.text}"
        if status in (403, 404):
            assert response.json()["code"] == ("forbidden" if status == 403 else "not_found")
            assert world.owner_session.session_id not in response.text and "alpha" not in response.text


@pytest.mark.parametrize("case", REVOKING, ids=lambda c: f"{c.method} {c.path}")
def test_revoking_another_owners_session_is_refused(world: World, case: Case):
    # The owner's session must survive every refused attempt, so the refusals go first.
    target = open_session(world.url, world.owner)
    ordered = sorted(case.expect.items(), key=lambda item: item[1] < 300)
    for who, status in ordered:
        response = httpx.request(case.method, world.url + _fill(world, case, target.session_id), headers=headers(world, who))
        assert response.status_code == status, f"{who}: {response.status_code} {response.text}"
        if status >= 400:
            alive = httpx.get(f"{world.url}/api/sessions/{target.session_id}", headers=target.headers)
            assert alive.status_code == 200 and alive.json()["active"] is True


def test_every_route_with_an_object_id_is_in_the_matrix(world: World):
    """A new route that names an object must join the matrix above."""
    spec = httpx.get(f"{world.url}/api/openapi.json").json()
    served = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
        if "{" in path
    }
    covered = {(case.method, case.template) for case in [*CASES, *REVOKING]}
    assert served - covered == set()


def test_lists_show_only_own_objects(world: World):
    url = world.url
    own = world.owner_session.session_id

    def ids(response: httpx.Response, key: str) -> set[str]:
        assert response.status_code == 200, response.text
        return {item[key] for item in response.json()["items"]}

    assert own in ids(httpx.get(f"{url}/api/sessions", headers=world.owner.headers), "session_id")
    for who in (PEER, FOREIGN_ADMIN, FOREIGN_USER):
        assert own not in ids(httpx.get(f"{url}/api/sessions", headers=headers(world, who)), "session_id")
    # The tenant's admin sees the whole tenant; the other tenant's admin none of it.
    assert own in ids(httpx.get(f"{url}/api/admin/sessions", headers=world.admin.headers), "session_id")
    foreign = world.foreign_admin.headers
    sessions = httpx.get(f"{url}/api/admin/sessions", headers=foreign, params={"user_id": world.owner.id})
    assert ids(sessions, "session_id") == set()
    users = httpx.get(f"{url}/api/admin/users", headers=foreign, params={"tenant_id": "default"})
    assert ids(users, "email") == {"boss@other.example", "user@other.example"}
    assert {"owner@example.com", "peer@example.com"} <= ids(
        httpx.get(f"{url}/api/admin/users", headers=world.admin.headers), "email"
    )
    executions = httpx.get(f"{url}/api/admin/executions", headers=foreign, params={"tenant_id": "default"})
    assert world.owner_execution not in ids(executions, "execution_id")
    assert world.owner_execution in ids(
        httpx.get(f"{url}/api/admin/executions", headers=world.admin.headers), "execution_id"
    )
    runtime_list = httpx.get(f"{url}/api/runtime/executions", headers=foreign, params={"tenant_id": "default"})
    assert world.owner_execution not in ids(runtime_list, "execution_id")
    audit = httpx.get(f"{url}/api/admin/audit", headers=foreign).json()["items"]
    assert all(item["target"] not in (world.owner.id, world.peer.id) for item in audit)
    assert {"login.succeeded"} <= {item["action"] for item in audit}
    stats = httpx.get(f"{url}/api/admin/stats", headers=foreign).json()
    assert sum(stats["executions_by_status"].values()) == 0


def test_tenant_and_user_in_a_body_are_rejected(world: World):
    url = world.url
    sneaky = {"tenant_id": "other", "user_id": world.foreign_user.id}
    attempts = [
        httpx.post(f"{url}/api/admin/users", headers=world.admin.headers,
                   json={"email": "x@example.com", "password": "long enough pw", **sneaky}),
        httpx.post(f"{url}/api/sessions", headers=world.owner.headers, json=sneaky),
        httpx.post(f"{url}/api/intent/submit", headers=world.owner_session.headers,
                   json={"intent": "text.stats", "params": {"text": "a"}, **sneaky}),
    ]
    for response in attempts:
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "invalid_request"


def test_admin_created_users_land_in_the_admins_tenant(world: World):
    response = httpx.post(
        f"{world.url}/api/admin/users", headers=world.foreign_admin.headers,
        json={"email": "newbie@other.example", "password": "long enough pw", "role": "user"},
    )
    assert response.status_code == 201 and response.json()["tenant_id"] == "other"


async def test_socket_cannot_reach_another_sessions_execution(world: World):
    session = open_session(world.url, world.peer)
    async with websockets.connect(
        f"{world.ws_url}/api/runtime/agent?session_token={session.session_token}"
    ) as ws:
        ready = json.loads(await ws.recv())
        assert ready["type"] == "ready" and ready["session_id"] == session.session_id
        await ws.send(json.dumps({"type": "cancel", "id": "c1", "execution_id": world.owner_execution}))
        reply = json.loads(await ws.recv())
        assert reply["type"] == "error" and reply["code"] == "not_found" and reply["reply_to"] == "c1"
        await ws.send(json.dumps({"type": "resume", "after_seq": 0}))
        await ws.send(json.dumps({"type": "ping", "id": "p"}))
        while (message := json.loads(await ws.recv()))["type"] != "pong":
            assert message.get("session_id") in (None, session.session_id)


def test_runtime_api_refuses_a_non_admin_access_token(world: World):
    own = submit(world.url, world.peer_session)
    wait_finished(world.url, world.peer_session, own)
    response = httpx.get(f"{world.url}/api/runtime/executions/{own}", headers=world.peer.headers)
    assert response.status_code == 403
