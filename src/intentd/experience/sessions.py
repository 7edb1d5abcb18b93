"""Sessions: opaque session tokens, their context, and the session event log over REST.

A session token is 256 bits from ``secrets``; only its SHA-256 is stored. It
expires ``session_ttl`` after its last use (sliding); the renewal is written at
most once a minute per session, so a chatty client costs no write per call.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from intentd.bus import CONTROL
from intentd.config import Settings
from intentd.experience import audit
from intentd.experience.identity import (
    Principal,
    client_ip,
    credential_checks,
    current_principal,
    decode_access_token,
    experience_state,
    optional_principal,
)
from intentd.problems import Problem
from intentd.store import Store
from intentd.store.events import read_session
from intentd.store.schema import sessions, users

if TYPE_CHECKING:
    from intentd.experience.state import ExperienceState

SESSION_TOKEN_BYTES = 32  # 256 bits
RENEW_AT_MOST_EVERY = 60.0
MAX_CONTEXT_BYTES = 256 * 1024
MAX_SEQ = 2**62  # within every database's BIGINT

router = APIRouter(prefix="/api/sessions", tags=["sessions"])


# -- tokens -----------------------------------------------------------------


def new_session_token() -> str:
    return secrets.token_urlsafe(SESSION_TOKEN_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_jwt(token: str) -> bool:
    """Access tokens are JWTs (three dot-separated parts); session tokens have no dots."""
    return token.count(".") == 2


@dataclass(frozen=True, slots=True)
class SessionAuth:
    """A verified session token: the session it opens, and whose it is."""

    session_id: str
    tenant_id: str
    user_id: str | None
    expires_at: float
    last_seq: int  # when verified


async def verify_session_token(state: ExperienceState, token: str | None) -> SessionAuth | None:
    """The session a token opens, renewing its expiry; None when invalid, expired or revoked."""
    if not token or len(token) > 256 or looks_like_jwt(token):
        return None
    row = await state.sessions_by_token.get(hash_token(token))
    return await _renewed(state.store, state.settings, row, time.time())


async def recheck_session(store: Store, settings: Settings, session_id: str) -> bool:
    """Whether a session with an open socket is still valid (and renew its expiry)."""
    now = time.time()
    row = await store.run_read(lambda conn: conn.execute(_OPEN_BY_ID, {"key": session_id}).first())
    return await _renewed(store, settings, row, now) is not None


_OPEN = sa.select(
    sessions.c.id, sessions.c.tenant_id, sessions.c.user_id, sessions.c.expires_at,
    sessions.c.revoked_at, sessions.c.last_seq, users.c.disabled,
).select_from(sessions.outerjoin(users, users.c.id == sessions.c.user_id))
# Statements built once are compiled once: a connect is on the hot path.
# Read together by the tokens' hashes (``BatchedLookup``): connects come in bursts.
SESSIONS_BY_TOKEN_HASH = _OPEN.add_columns(sessions.c.token_hash).where(
    sessions.c.token_hash.in_(sa.bindparam("keys", expanding=True))
)
_OPEN_BY_ID = _OPEN.where(sessions.c.id == sa.bindparam("key"))
_RENEW = (
    sa.update(sessions)
    .where(sessions.c.id == sa.bindparam("sid"), sessions.c.revoked_at.is_(None))
    .values(expires_at=sa.bindparam("renewed"))
)


async def _renewed(store: Store, settings: Settings, row: Any, now: float) -> SessionAuth | None:
    """The session ``row`` opens at ``now``, its expiry renewed; None when it opens none."""
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    if row.user_id is not None and (row.disabled is None or row.disabled):
        return None  # the user is disabled or gone
    expires_at = row.expires_at
    renewed = now + settings.session_ttl
    if renewed - expires_at >= RENEW_AT_MOST_EVERY:
        await store.run_write(lambda conn: conn.execute(_RENEW, {"sid": row.id, "renewed": renewed}))
        expires_at = renewed
    return SessionAuth(row.id, row.tenant_id, row.user_id, expires_at, row.last_seq)


# -- who is calling -----------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, scheme_name="bearer", description="Access token or session token")


@dataclass(frozen=True, slots=True)
class Caller:
    """A user (access token) or one session (session token)."""

    tenant_id: str
    user_id: str | None
    session_id: str | None  # set when the credential is a session token
    principal: Principal | None

    def may_see(self, session: dict[str, Any]) -> bool:
        if session["tenant_id"] != self.tenant_id:
            return False
        if self.session_id is not None:
            return session["id"] == self.session_id
        return self.user_id is not None and session["user_id"] == self.user_id


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


async def session_or_user(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> Caller:
    """Verify a Bearer session token or access token."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise _unauthorized("a Bearer session token or access token is required")
    token = credentials.credentials
    state = experience_state(request)
    if looks_like_jwt(token):
        claims = decode_access_token(state.settings, token)
        principal = await credential_checks(request.app).principal(claims)
        return Caller(principal.tenant_id, principal.user_id, None, principal)
    auth = await verify_session_token(state, token)
    if auth is None:
        raise _unauthorized("the session token is invalid, expired or revoked")
    return Caller(auth.tenant_id, auth.user_id, auth.session_id, None)


async def session_token_auth(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> SessionAuth:
    """Only a session token will do (intents are submitted within one session)."""
    token = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else None
    state = experience_state(request)
    auth = await verify_session_token(state, token)
    if auth is None:
        raise _unauthorized("a valid Bearer session token is required (POST /api/sessions issues one)")
    return auth


# -- models -------------------------------------------------------------------


class CreateSession(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metadata: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)


class ContextPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    context: dict[str, Any]


def session_view(row: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    return {
        "session_id": row["id"],
        "tenant_id": row["tenant_id"],
        "user_id": row["user_id"],
        "metadata": row["metadata"],
        "context": row["context"],
        "created_at": row["created_at"],
        "expires_at": row["expires_at"],
        "revoked_at": row["revoked_at"],
        "active": row["revoked_at"] is None and row["expires_at"] > now,
        "last_seq": row["last_seq"],
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge recursively, null deletes a key."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def _check_context_size(context: dict[str, Any]) -> None:
    if len(orjson.dumps(context)) > MAX_CONTEXT_BYTES:
        raise Problem(413, "context_too_large", f"a session context is limited to {MAX_CONTEXT_BYTES} bytes")


_SESSION_COLUMNS = [c for c in sessions.c if c.name != "token_hash"]
_SESSION_BY_ID = sa.select(*_SESSION_COLUMNS).where(sessions.c.id == sa.bindparam("sid"))


async def load_session(store: Store, session_id: str) -> dict[str, Any] | None:
    row = await store.run_read(lambda conn: conn.execute(_SESSION_BY_ID, {"sid": session_id}).first())
    return dict(row._mapping) if row is not None else None


async def visible_session(store: Store, caller: Caller, session_id: str) -> dict[str, Any]:
    """The session if the caller may see it; another user's or tenant's is a 404."""
    row = await load_session(store, session_id) if len(session_id) <= 64 else None
    if row is None or not caller.may_see(row):
        raise Problem(404, "not_found", "no such session")
    return row


async def revoke_session(state: Any, session_id: str) -> None:
    """Revoke and tell every replica to close the session's sockets (4401)."""
    async with state.store.tx() as conn:
        await conn.execute(
            sa.update(sessions)
            .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=time.time())
        )
    state.hub.close_session(session_id, "the session has been revoked")
    await state.bus.publish(CONTROL, {"type": "session.revoked", "session_id": session_id})


# -- routes -------------------------------------------------------------------


@router.post("", status_code=201)
async def create_session(
    request: Request, body: CreateSession, principal: Principal | None = Depends(optional_principal)
) -> dict[str, Any]:
    state = experience_state(request)
    settings: Settings = state.settings
    if principal is None and not settings.allow_anonymous:
        raise _unauthorized("a Bearer access token is required (anonymous sessions are disabled)")
    _check_context_size(body.context)
    _check_context_size(body.metadata)
    tenant_id = principal.tenant_id if principal else settings.registration_tenant
    user_id = principal.user_id if principal else None
    token = new_session_token()
    now = time.time()
    row = {
        "id": str(uuid.uuid4()),
        "tenant_id": tenant_id,
        "user_id": user_id,
        "token_hash": hash_token(token),
        "metadata": body.metadata,
        "context": body.context,
        "created_at": now,
        "expires_at": now + settings.session_ttl,
        "revoked_at": None,
        "last_seq": 0,
    }
    async with state.store.tx() as conn:
        await conn.execute(sa.insert(sessions).values(**row))
    return {"session_id": row["id"], "session_token": token, "expires_at": row["expires_at"]}


@router.get("")
async def list_sessions(
    request: Request,
    principal: Principal = Depends(current_principal),
    active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    now = time.time()
    query = (
        sa.select(*_SESSION_COLUMNS)
        .where(sessions.c.tenant_id == principal.tenant_id, sessions.c.user_id == principal.user_id)
        .order_by(sessions.c.created_at.desc())
        .limit(limit)
    )
    if active is True:
        query = query.where(sessions.c.revoked_at.is_(None), sessions.c.expires_at > now)
    elif active is False:
        query = query.where(sa.or_(sessions.c.revoked_at.is_not(None), sessions.c.expires_at <= now))
    async with experience_state(request).store.read() as conn:
        result = await conn.execute(query)
        return {"items": [session_view(dict(row._mapping), now) for row in result]}


@router.get("/{session_id}")
async def get_session(request: Request, session_id: str, caller: Caller = Depends(session_or_user)) -> dict[str, Any]:
    return session_view(await visible_session(experience_state(request).store, caller, session_id))


@router.delete("/{session_id}", status_code=204)
async def delete_session(request: Request, session_id: str, caller: Caller = Depends(session_or_user)) -> Response:
    state = experience_state(request)
    await visible_session(state.store, caller, session_id)
    await revoke_session(state, session_id)
    await audit.append(
        state.store,
        audit.AuditEvent(
            action="session.revoked", tenant_id=caller.tenant_id, actor_id=caller.user_id,
            target=session_id, ip=client_ip(request),
        ),
    )
    return Response(status_code=204)


@router.get("/{session_id}/context")
async def get_context(request: Request, session_id: str, caller: Caller = Depends(session_or_user)) -> dict[str, Any]:
    row = await visible_session(experience_state(request).store, caller, session_id)
    return {"context": row["context"]}


@router.patch("/{session_id}/context")
async def patch_context(
    request: Request, session_id: str, body: ContextPatch, caller: Caller = Depends(session_or_user)
) -> dict[str, Any]:
    store: Store = experience_state(request).store
    await visible_session(store, caller, session_id)
    async with store.tx() as conn:
        # FOR UPDATE (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises):
        # two concurrent patches both land.
        current = (
            await conn.execute(sa.select(sessions.c.context).where(sessions.c.id == session_id).with_for_update())
        ).scalar_one()
        merged = merge_patch(current, body.context)
        _check_context_size(merged)
        await conn.execute(sa.update(sessions).where(sessions.c.id == session_id).values(context=merged))
    return {"context": merged}


@router.get("/{session_id}/events")
async def session_events(
    request: Request,
    session_id: str,
    caller: Caller = Depends(session_or_user),
    after_seq: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> dict[str, Any]:
    store: Store = experience_state(request).store
    row = await visible_session(store, caller, session_id)
    items = await read_session(store, session_id, after_seq, limit)
    # The log may have grown since the session row was read.
    last_seq = max([row["last_seq"], *(item["seq"] for item in items)])
    return {"items": items, "last_seq": last_seq}
