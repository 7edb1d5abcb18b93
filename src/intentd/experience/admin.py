"""/api/admin: users, sessions, executions, routes, stats and the audit log of the admin's tenant.

Every route requires the admin role and sees only the admin's own tenant:
another tenant's user, session or execution is a 404, exactly as if it did
not exist. Executions are reached through the Runtime plane's API (the
Experience plane never runs or changes them itself), scoped by tenant.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Annotated, Any, Literal

import sqlalchemy as sa
import structlog
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from intentd.experience import audit
from intentd.experience.auth import user_problem
from intentd.experience.identity import (
    Principal,
    client_ip,
    experience_state,
    require_admin,
)
from intentd.experience.security import problem_responses
from intentd.experience.sessions import revoke_session, session_view
from intentd.experience.users import (
    MAX_PASSWORD,
    User,
    UserError,
    create_user,
    get_user,
    list_users,
    set_disabled,
    set_role,
)
from intentd.gateway.contract import CONTRACT
from intentd.problems import Problem
from intentd.store.schema import events, executions, sessions

log = structlog.get_logger("intentd.admin")

router = APIRouter(
    prefix="/api/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses=problem_responses(401, 403),
)

Admin = Annotated[Principal, Depends(require_admin)]
EVENT_RATE_WINDOW = 10.0
STATUSES = ("accepted", "running", "compensating", "completed", "failed", "cancelled")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewUser(_Strict):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)
    role: Literal["admin", "user"] = "user"


class UserPatch(_Strict):
    role: Literal["admin", "user"] | None = None
    disabled: bool | None = None


class UserView(BaseModel):
    id: str
    email: str
    tenant_id: str
    role: str
    disabled: bool
    created_at: float


class UserList(BaseModel):
    items: list[UserView]


def _audit(principal: Principal, request: Request, action: str, target: str | None = None, **detail: Any) -> audit.AuditEvent:
    return audit.AuditEvent(
        action=action,
        tenant_id=principal.tenant_id,
        actor_id=principal.user_id,
        target=target,
        detail=detail,
        ip=client_ip(request),
    )


def _not_found(what: str) -> Problem:
    return Problem(404, "not_found", f"no such {what}")


async def _tenant_user(request: Request, principal: Principal, user_id: str) -> User:
    user = await get_user(experience_state(request).store, user_id) if len(user_id) <= 64 else None
    if user is None or user.tenant_id != principal.tenant_id:
        raise _not_found("user")
    return user


# -- users ------------------------------------------------------------------------


@router.get("/users", response_model=UserList)
async def admin_list_users(request: Request, principal: Admin) -> UserList:
    found = await list_users(experience_state(request).store, principal.tenant_id)
    return UserList(items=[UserView(**user.public()) for user in found])


@router.post("/users", status_code=201, response_model=UserView, responses=problem_responses(409, 422))
async def admin_create_user(body: NewUser, request: Request, principal: Admin) -> UserView:
    try:
        user = await create_user(
            experience_state(request).store,
            email=body.email,
            password=body.password,
            tenant_id=principal.tenant_id,  # never from the body
            role=body.role,
            audit_event=_audit(principal, request, "user.created"),
        )
    except UserError as exc:
        raise user_problem(exc) from None
    return UserView(**user.public())


@router.patch("/users/{user_id}", response_model=UserView, responses=problem_responses(404, 409, 422))
async def admin_patch_user(user_id: str, body: UserPatch, request: Request, principal: Admin) -> UserView:
    state = experience_state(request)
    user = await _tenant_user(request, principal, user_id)
    if user.id == principal.user_id and (body.disabled or body.role == "user"):
        # Locking oneself out (or demoting the last admin) is never what was meant.
        raise Problem(409, "cannot_modify_self", "an admin cannot disable or demote their own account")
    if body.role is not None and body.role != user.role:
        user = await set_role(state.store, state.bus, user, body.role, audit_event=_audit(
            principal, request, "user.role_changed"))
    if body.disabled is not None and body.disabled != user.disabled:
        action = "user.disabled" if body.disabled else "user.enabled"
        user = await set_disabled(state.store, state.bus, user, body.disabled, audit_event=_audit(
            principal, request, action))
    return UserView(**user.public())


# -- sessions ----------------------------------------------------------------------


@router.get("/sessions")
async def admin_list_sessions(
    request: Request,
    principal: Admin,
    user_id: Annotated[str | None, Query(max_length=64)] = None,
    active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    now = time.time()
    columns = [c for c in sessions.c if c.name != "token_hash"]
    query = sa.select(*columns).where(sessions.c.tenant_id == principal.tenant_id)
    if user_id is not None:
        query = query.where(sessions.c.user_id == user_id)
    if active is True:
        query = query.where(sessions.c.revoked_at.is_(None), sessions.c.expires_at > now)
    elif active is False:
        query = query.where(sa.or_(sessions.c.revoked_at.is_not(None), sessions.c.expires_at <= now))
    query = query.order_by(sessions.c.created_at.desc()).limit(limit)
    async with experience_state(request).store.read() as conn:
        rows = [dict(row._mapping) for row in await conn.execute(query)]
    return {"items": [session_view(row, now) for row in rows]}


@router.delete("/sessions/{session_id}", status_code=204, response_class=Response, responses=problem_responses(404))
async def admin_revoke_session(session_id: str, request: Request, principal: Admin) -> Response:
    state = experience_state(request)
    async with state.store.read() as conn:
        row = (
            await conn.execute(
                sa.select(sessions.c.id, sessions.c.user_id).where(
                    sessions.c.id == session_id, sessions.c.tenant_id == principal.tenant_id
                )
            )
        ).first() if len(session_id) <= 64 else None
    if row is None:
        raise _not_found("session")
    await revoke_session(state, session_id)
    await audit.append(state.store, _audit(principal, request, "session.revoked", session_id, user_id=row.user_id))
    return Response(status_code=204)


# -- executions (through the Runtime plane's API) ------------------------------------


async def _runtime(request: Request, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    # The runtime client's generic call: it maps runtime errors to our problems
    # (404 stays 404, an unreachable runtime is 503).
    return await experience_state(request).runtime.call(method, path, **kwargs)


_EXECUTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


def _execution_path(execution_id: str, suffix: str = "") -> str:
    # Execution ids are UUIDs; anything else cannot name one, and must not
    # reach the runtime's URL as another path or a malformed request.
    if not _EXECUTION_ID.match(execution_id):
        raise _not_found("execution")
    return f"/api/runtime/executions/{execution_id}{suffix}"


@router.get("/executions")
async def admin_list_executions(
    request: Request,
    principal: Admin,
    status: Literal["accepted", "running", "compensating", "completed", "failed", "cancelled"] | None = None,
    intent: Annotated[str | None, Query(max_length=200)] = None,
    user_id: Annotated[str | None, Query(max_length=36)] = None,
    session_id: Annotated[str | None, Query(max_length=36)] = None,
    created_after: float | None = None,
    created_before: float | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    params: dict[str, Any] = {"tenant_id": principal.tenant_id, "limit": limit}
    optional = {
        "status": status, "intent": intent, "user_id": user_id, "session_id": session_id,
        "created_after": created_after, "created_before": created_before, "cursor": cursor,
    }
    params.update({key: value for key, value in optional.items() if value is not None})
    page = await _runtime(request, "GET", "/api/runtime/executions", params=params)
    return {"items": page.get("items", []), "next_cursor": page.get("next_cursor")}


@router.get("/executions/{execution_id}", responses=problem_responses(404))
async def admin_get_execution(execution_id: str, request: Request, principal: Admin) -> dict[str, Any]:
    scope = {"tenant_id": principal.tenant_id}
    execution = await _runtime(request, "GET", _execution_path(execution_id), params=scope)
    found = await _runtime(request, "GET", _execution_path(execution_id, "/events"), params=scope)
    return {**execution, "events": found.get("items", [])}


@router.post("/executions/{execution_id}/cancel", status_code=202, responses=problem_responses(404))
async def admin_cancel_execution(execution_id: str, request: Request, principal: Admin) -> dict[str, Any]:
    scope = {"tenant_id": principal.tenant_id}
    answer = await _runtime(request, "POST", _execution_path(execution_id, "/cancel"), params=scope)
    await audit.append(
        experience_state(request).store, _audit(principal, request, "execution.cancelled", execution_id)
    )
    return answer


@router.post("/executions/{execution_id}/retry", status_code=202, responses=problem_responses(404, 422))
async def admin_retry_execution(execution_id: str, request: Request, principal: Admin) -> dict[str, Any]:
    original = await _runtime(
        request, "GET", _execution_path(execution_id), params={"tenant_id": principal.tenant_id}
    )
    # Same intent, params, owner and session (so the owner sees the outcome),
    # linked to the original; no idempotency key: a retry is a new run.
    created = await _runtime(
        request,
        "POST",
        "/api/runtime/executions",
        json={
            "intent": original["intent"],
            "params": original["params"],
            "tenant_id": principal.tenant_id,
            "user_id": original.get("user_id"),
            "session_id": original.get("session_id"),
            "retry_of": original["execution_id"],
        },
    )
    await audit.append(
        experience_state(request).store,
        _audit(principal, request, "execution.retried", execution_id, new_execution_id=created["execution_id"]),
    )
    return {"execution_id": created["execution_id"], "retry_of": original["execution_id"], "status": created.get("status")}


# -- routes, stats, audit -------------------------------------------------------------


# The route tables are fixed for the life of the process: check once.
_route_check: dict[str, Any] | None = None


def _run_route_check(settings: Any) -> dict[str, Any]:
    # Imported here: the check builds both planes' apps (by name) to read their route tables.
    from intentd.gateway.check import check_routes
    from intentd.gateway.tables import route_tables

    problems = check_routes(route_tables(settings))
    return {"ok": not problems, "problems": [problem.as_dict() for problem in problems]}


@router.get("/routes")
async def admin_routes(request: Request, principal: Admin) -> dict[str, Any]:
    global _route_check
    if _route_check is None:
        try:
            _route_check = await asyncio.to_thread(_run_route_check, experience_state(request).settings)
        except Exception as exc:  # the check itself broke: report that, and still show the contract
            log.exception("route check failed")
            failure = {"check": "error", "path": "", "plane": "", "message": f"the route check failed: {exc!r}"}
            return {"contract": _contract(), "check": {"ok": False, "problems": [failure]}}
    return {"contract": _contract(), "check": _route_check}


def _contract() -> list[dict[str, Any]]:
    return [
        {"prefix": r.prefix, "owner": r.owner, "kind": r.kind, "priority": r.priority, "public": r.public}
        for r in CONTRACT
    ]


@router.get("/stats")
async def admin_stats(request: Request, principal: Admin) -> dict[str, Any]:
    state = experience_state(request)
    now = time.time()
    tenant = principal.tenant_id
    async with state.store.read() as conn:
        active_ids = list(
            (
                await conn.execute(
                    sa.select(sessions.c.id).where(
                        sessions.c.tenant_id == tenant, sessions.c.revoked_at.is_(None), sessions.c.expires_at > now
                    )
                )
            ).scalars()
        )
        by_status = {
            row.status: row.count
            for row in await conn.execute(
                sa.select(executions.c.status, sa.func.count().label("count"))
                .where(executions.c.tenant_id == tenant)
                .group_by(executions.c.status)
            )
        }
        recent_events = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(events.join(sessions, sessions.c.id == events.c.session_id))
                .where(sessions.c.tenant_id == tenant, events.c.created_at >= now - EVENT_RATE_WINDOW)
            )
        ).scalar_one()
    return {
        # Sockets of this process (each replica reports its own), of this tenant's sessions.
        "sockets": sum(state.hub.sockets_of(session_id) for session_id in active_ids),
        "sessions_active": len(active_ids),
        "executions_by_status": {status: by_status.get(status, 0) for status in STATUSES},
        "events_per_second": round(recent_events / EVENT_RATE_WINDOW, 3),
    }


@router.get("/audit")
async def admin_audit(
    request: Request,
    principal: Admin,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    items, next_cursor = await audit.query(
        experience_state(request).store, principal.tenant_id, limit=limit, cursor=cursor, action=action
    )
    return {"items": items, "next_cursor": next_cursor}
