"""/api/auth: login, refresh (rotating), logout, me, register.

Refresh tokens are opaque (256 random bits), stored as SHA-256 hashes, and
rotated on every use. Each login starts a family; presenting a token that was
already rotated means it was stolen (or the client is broken): the whole family
is revoked, the answer is 401 ``token_reused``, and the event is audited.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Annotated, Any, NoReturn

import sqlalchemy as sa
import structlog
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from intentd.bus import CONTROL
from intentd.experience import audit
from intentd.experience.identity import (
    Principal,
    client_ip,
    credential_checks,
    current_principal,
    experience_state,
    issue_access_token,
)
from intentd.experience.limits import limiter_for
from intentd.experience.security import problem_responses
from intentd.experience.sessions import hash_token
from intentd.experience.users import (
    MAX_PASSWORD,
    User,
    UserError,
    create_user,
    get_user,
    get_user_by_email,
    verify_password,
)
from intentd.problems import Problem
from intentd.store import Store
from intentd.store.schema import refresh_tokens, revoked_tokens

log = structlog.get_logger("intentd.auth")

router = APIRouter(prefix="/api/auth", tags=["auth"])
Caller = Annotated[Principal, Depends(current_principal)]


class _Strict(BaseModel):
    # Unknown fields are rejected: a tenant_id or role in a body is never honoured.
    model_config = ConfigDict(extra="forbid")


class LoginRequest(_Strict):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class RefreshRequest(_Strict):
    refresh_token: str = Field(min_length=1, max_length=200)


class LogoutRequest(_Strict):
    refresh_token: str | None = Field(default=None, min_length=1, max_length=200)


class RegisterRequest(_Strict):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class Me(BaseModel):
    id: str
    email: str
    tenant_id: str
    role: str
    created_at: float


class Registered(BaseModel):
    id: str
    email: str
    tenant_id: str
    role: str


def _invalid_credentials() -> Problem:
    return Problem(401, "invalid_credentials", "wrong email or password", headers={"WWW-Authenticate": "Bearer"})


def _bad_refresh() -> Problem:
    return Problem(401, "unauthorized", "the refresh token is not valid", headers={"WWW-Authenticate": "Bearer"})


async def _issue_pair(
    request: Request, user: User, *, family_id: str | None = None, audit_event: audit.AuditEvent | None = None
) -> TokenPair:
    """A new access token and a refresh token (of ``family_id``, or a new family: a new login)."""
    state = experience_state(request)
    settings = state.settings
    family_id = family_id or str(uuid.uuid4())
    access = issue_access_token(
        settings, user_id=user.id, tenant_id=user.tenant_id, role=user.role, family_id=family_id
    )
    refresh = secrets.token_urlsafe(32)
    now = time.time()
    async with state.store.tx() as conn:
        await conn.execute(
            refresh_tokens.insert().values(
                id=str(uuid.uuid4()),
                token_hash=hash_token(refresh),
                family_id=family_id,
                user_id=user.id,
                created_at=now,
                expires_at=now + settings.refresh_token_ttl,
            )
        )
        if audit_event is not None:
            await audit.append_in(conn, audit_event)
    return TokenPair(access_token=access.token, refresh_token=refresh, expires_in=settings.access_token_ttl)


@router.post("/login", response_model=TokenPair, responses=problem_responses(401, 429))
async def login(body: LoginRequest, request: Request) -> TokenPair:
    state = experience_state(request)
    limiter = limiter_for(request.app)
    ip = client_ip(request)
    await limiter.check_login(body.email, ip)
    user = await get_user_by_email(state.store, body.email)
    # Verify even for unknown or disabled users: the answer and its timing must not tell them apart.
    password_ok = await verify_password(user.password_hash if user else None, body.password)
    if user is None or not password_ok or user.disabled:
        await limiter.login_failed(body.email, ip)
        await audit.append(
            state.store,
            audit.AuditEvent(
                action="login.failed",
                tenant_id=user.tenant_id if user else None,
                target=user.id if user else None,
                detail={"reason": "disabled" if user and password_ok else "credentials"},
                ip=ip,
            ),
        )
        raise _invalid_credentials()
    return await _issue_pair(
        request,
        user,
        audit_event=audit.AuditEvent(
            action="login.succeeded", tenant_id=user.tenant_id, actor_id=user.id, target=user.id, ip=ip
        ),
    )


@router.post("/refresh", response_model=TokenPair, responses=problem_responses(401))
async def refresh(body: RefreshRequest, request: Request) -> TokenPair:
    state = experience_state(request)
    store: Store = state.store
    now = time.time()
    token_hash = hash_token(body.refresh_token)
    row = await _refresh_row(store, token_hash)
    if row is None:
        raise _bad_refresh()
    if row.used_at is not None:
        await _revoke_reused_family(request, row)
    if row.revoked_at is not None or row.expires_at <= now:
        raise _bad_refresh()
    async with store.tx() as conn:
        rotated = await conn.execute(
            refresh_tokens.update()
            .where(refresh_tokens.c.id == row.id, refresh_tokens.c.used_at.is_(None), refresh_tokens.c.revoked_at.is_(None))
            .values(used_at=now)
        )
    if rotated.rowcount != 1:
        # Changed since it was read: a concurrent refresh with the same token
        # won (so this one is the reuse), or a logout revoked it.
        row = await _refresh_row(store, token_hash)
        if row is not None and row.used_at is not None:
            await _revoke_reused_family(request, row)
        raise _bad_refresh()
    user = await get_user(store, row.user_id)
    if user is None or user.disabled:
        raise _bad_refresh()
    return await _issue_pair(request, user, family_id=row.family_id)


async def _refresh_row(store: Store, token_hash: str) -> Any:
    async with store.read() as conn:
        return (await conn.execute(sa.select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash))).first()


async def _revoke_reused_family(request: Request, row: Any) -> NoReturn:
    """Revoke the family of a reused refresh token, audit it, and answer 401 ``token_reused``."""
    state = experience_state(request)
    async with state.store.tx() as conn:
        await conn.execute(
            refresh_tokens.update()
            .where(refresh_tokens.c.family_id == row.family_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=time.time())
        )
    await _announce_revoked(request, family_id=row.family_id)
    owner = await get_user(state.store, row.user_id)
    log.warning("refresh token reused; family revoked", user_id=row.user_id, family_id=row.family_id)
    await audit.append(
        state.store,
        audit.AuditEvent(
            action="token.reused",
            tenant_id=owner.tenant_id if owner else None,
            target=row.user_id,
            detail={"family_id": row.family_id},
            ip=client_ip(request),
        ),
    )
    raise Problem(
        401,
        "token_reused",
        "this refresh token was already used; all tokens of its login were revoked",
        headers={"WWW-Authenticate": "Bearer"},
    )


@router.post("/logout", status_code=204, response_class=Response, responses=problem_responses(401))
async def logout(request: Request, principal: Caller, body: LogoutRequest | None = None) -> Response:
    state = experience_state(request)
    assert principal.token_id is not None  # access tokens always carry a jti
    now = time.time()
    expires_at = now + state.settings.access_token_ttl  # an upper bound of the token's own expiry
    family_id = principal.family_id
    async with state.store.tx() as conn:
        await conn.execute(
            state.store.insert(revoked_tokens)
            .values(jti=principal.token_id, expires_at=expires_at)
            .on_conflict_do_nothing(index_elements=["jti"])
        )
        await conn.execute(revoked_tokens.delete().where(revoked_tokens.c.expires_at < now))
        if body is not None and body.refresh_token:
            # The refresh token names the login to end (it must be the caller's own).
            family_id = (
                await conn.execute(
                    sa.select(refresh_tokens.c.family_id).where(
                        refresh_tokens.c.token_hash == hash_token(body.refresh_token),
                        refresh_tokens.c.user_id == principal.user_id,
                    )
                )
            ).scalar() or family_id
        if family_id is not None:
            await conn.execute(
                refresh_tokens.update()
                .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        await audit.append_in(
            conn,
            audit.AuditEvent(
                action="logout",
                tenant_id=principal.tenant_id,
                actor_id=principal.user_id,
                target=principal.user_id,
                detail={"refresh_family_revoked": family_id is not None},
                ip=client_ip(request),
            ),
        )
    await _announce_revoked(request, jti=principal.token_id, family_id=family_id)
    return Response(status_code=204)


async def _announce_revoked(request: Request, *, jti: str | None = None, family_id: str | None = None) -> None:
    """Make the revocation take effect now in this process, and within a bus hop in the others."""
    state = experience_state(request)
    expires_at = time.time() + state.settings.access_token_ttl  # the longest any affected token lives
    checks = credential_checks(request.app)
    message: dict[str, Any] = {"type": "token.revoked", "expires_at": expires_at}
    if jti is not None:
        checks.mark_revoked(jti, expires_at)
        message["jti"] = jti
    if family_id is not None:
        checks.mark_family_revoked(family_id, expires_at)
        message["family_id"] = family_id
    await state.bus.publish(CONTROL, message)


@router.get("/me", response_model=Me, responses=problem_responses(401))
async def me(request: Request, principal: Caller) -> Me:
    user = await get_user(experience_state(request).store, principal.user_id) if principal.user_id else None
    if user is None:
        raise Problem(401, "unauthorized", "the account no longer exists")
    return Me(id=user.id, email=user.email, tenant_id=user.tenant_id, role=user.role, created_at=user.created_at)


@router.post("/register", status_code=201, response_model=Registered, responses=problem_responses(403, 409, 422, 429))
async def register(body: RegisterRequest, request: Request) -> Registered:
    state = experience_state(request)
    settings = state.settings
    if not settings.open_registration:
        raise Problem(403, "registration_closed", "open registration is disabled on this server")
    ip = client_ip(request)
    await limiter_for(request.app).check_registration(ip)
    try:
        user = await create_user(
            state.store,
            email=body.email,
            password=body.password,
            tenant_id=settings.registration_tenant,
            role="user",
            audit_event=audit.AuditEvent(action="user.registered", tenant_id=settings.registration_tenant, ip=ip),
        )
    except UserError as exc:
        raise user_problem(exc) from None
    return Registered(id=user.id, email=user.email, tenant_id=user.tenant_id, role=user.role)


def user_problem(exc: UserError) -> Problem:
    if exc.code == "email_taken":
        return Problem(409, "email_taken", str(exc))
    field = "password" if "password" in exc.code else ("email" if "email" in exc.code else "body")
    return Problem(
        422,
        exc.code,
        str(exc),
        errors=[{"loc": ["body", field], "type": exc.code, "msg": str(exc)}],
    )
