"""Who is calling: access tokens (JWT) and the FastAPI dependencies that verify them.

Tenant, user and role always come from the verified credential, never from a
request body or query (DESIGN §4). The role and tenant are re-read from the
user row (cached for at most ``CHECK_TTL`` seconds), so demoting or disabling a
user takes effect within a second even though their JWT still says otherwise.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from intentd.bus import CONTROL
from intentd.config import Settings
from intentd.problems import Problem
from intentd.store import Store
from intentd.store.credentials import AccountState, account_state

log = structlog.get_logger("intentd.identity")

ALGORITHM = "HS256"
ACCESS = "access"
_REQUIRED_CLAIMS = ["sub", "tid", "role", "jti", "iat", "exp", "typ"]

# How long a positive "user enabled, token not revoked" answer is trusted
# without asking the database again. Revocations made by this process, and
# those announced on the bus, take effect immediately.
CHECK_TTL = 1.0
_CACHE_MAX = 50_000


@dataclass(frozen=True)
class Principal:
    user_id: str | None
    tenant_id: str
    role: str
    token_id: str | None
    family_id: str | None = None  # the login (refresh token family) the access token belongs to


@dataclass(frozen=True)
class AccessToken:
    token: str
    jti: str
    expires_at: int


def issue_access_token(
    settings: Settings, *, user_id: str, tenant_id: str, role: str, family_id: str | None = None
) -> AccessToken:
    """A signed access token. ``family_id`` (claim ``fam``) ties it to the login whose refresh
    tokens it was issued with: revoking that family (logout, reuse) revokes it too."""
    now = int(time.time())
    jti = str(uuid.uuid4())
    exp = now + settings.access_token_ttl
    claims: dict[str, Any] = {
        "sub": user_id, "tid": tenant_id, "role": role, "jti": jti, "iat": now, "exp": exp, "typ": ACCESS,
    }
    if family_id is not None:
        claims["fam"] = family_id
    return AccessToken(jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM), jti, exp)


def decode_access_token(settings: Settings, token: str) -> dict[str, Any]:
    """The verified claims of an access token; ``Problem(401)`` for anything else."""
    try:
        claims = jwt.decode(
            token, settings.secret_key, algorithms=[ALGORITHM], options={"require": _REQUIRED_CLAIMS}
        )
    except jwt.ExpiredSignatureError:
        raise _unauthorized("the access token has expired") from None
    except jwt.PyJWTError:
        raise _unauthorized("the access token is not valid") from None
    if claims.get("typ") != ACCESS or not all(
        isinstance(claims.get(name), str) for name in ("sub", "tid", "role", "jti")
    ) or not isinstance(claims.get("fam", ""), str):
        raise _unauthorized("the access token is not valid")
    return claims


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})




class CredentialChecks:
    """Revocation and user-state checks with a short cache, one per app.

    A token is revoked when its jti is in ``revoked_tokens`` (logout) or its
    refresh family was revoked (logout, reuse of a rotated refresh token).
    Kept correct across processes by the 1 s cache lifetime and sped up by
    the bus: ``user.disabled``, ``user.changed`` and ``token.revoked`` control
    messages drop cached answers at once.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._users: dict[str, tuple[float, AccountState | None]] = {}
        self._revoked: dict[str, float] = {}  # jti or "fam:" + family -> expiry (unix), known revoked
        self._checked_jtis: dict[str, float] = {}  # jti -> monotonic time of the last "not revoked"

    def on_control(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind in ("user.disabled", "user.changed") and isinstance(message.get("user_id"), str):
            self.forget_user(message["user_id"])
        elif kind == "token.revoked":
            expires_at = time.time() + 3600
            if isinstance(message.get("expires_at"), (int, float)):
                expires_at = float(message["expires_at"])
            if isinstance(message.get("jti"), str):
                self.mark_revoked(message["jti"], expires_at)
            if isinstance(message.get("family_id"), str):
                self.mark_family_revoked(message["family_id"], expires_at)

    def forget_user(self, user_id: str) -> None:
        self._users.pop(user_id, None)

    def mark_revoked(self, jti: str, expires_at: float) -> None:
        self._revoked[jti] = expires_at
        self._checked_jtis.pop(jti, None)

    def mark_family_revoked(self, family_id: str, expires_at: float) -> None:
        """Every access token of this login is revoked (until the last of them expires)."""
        self._revoked["fam:" + family_id] = expires_at
        self._checked_jtis.clear()  # which jtis belong to the family is not kept: recheck all

    async def principal(self, claims: dict[str, Any]) -> Principal:
        user_id, jti, family_id = claims["sub"], claims["jti"], claims.get("fam")
        now = time.monotonic()
        cached_user = self._users.get(user_id)
        user_fresh = cached_user is not None and now - cached_user[0] < CHECK_TTL
        jti_fresh = jti in self._checked_jtis and now - self._checked_jtis[jti] < CHECK_TTL
        if jti in self._revoked or (family_id is not None and "fam:" + family_id in self._revoked):
            raise _unauthorized("the access token has been revoked")
        if not (user_fresh and jti_fresh):
            state, revoked = await self._load(user_id, jti, family_id)
            self._prune(now)
            self._users[user_id] = (now, state)
            if revoked:
                self.mark_revoked(jti, float(claims["exp"]))
                raise _unauthorized("the access token has been revoked")
            self._checked_jtis[jti] = now
        else:
            state = cached_user[1]  # type: ignore[index]
        if state is None or state.disabled:
            raise _unauthorized("the account is disabled or no longer exists")
        if state.tenant_id != claims["tid"]:
            raise _unauthorized("the access token is not valid")
        return Principal(
            user_id=user_id, tenant_id=state.tenant_id, role=state.role, token_id=jti, family_id=family_id
        )

    async def _load(self, user_id: str, jti: str, family_id: str | None) -> tuple[AccountState | None, bool]:
        return await account_state(self._store, user_id, jti, family_id)

    def _prune(self, now: float) -> None:
        if len(self._users) + len(self._checked_jtis) + len(self._revoked) < _CACHE_MAX:
            return
        self._users = {k: v for k, v in self._users.items() if now - v[0] < CHECK_TTL}
        self._checked_jtis = {k: v for k, v in self._checked_jtis.items() if now - v < CHECK_TTL}
        wall = time.time()
        self._revoked = {k: v for k, v in self._revoked.items() if v > wall}


def experience_state(request: Request) -> Any:
    """The app's ExperienceState (settings, store, bus, runtime, hub)."""
    return request.app.state.experience


def credential_checks(app: Any) -> CredentialChecks:
    """The app's checker, created on first use and subscribed to the bus's control topic."""
    checks = getattr(app.state, "intentd_credential_checks", None)
    if checks is None:
        state = app.state.experience
        checks = CredentialChecks(state.store)
        state.bus.subscribe(CONTROL, checks.on_control)
        app.state.intentd_credential_checks = checks
    return checks


_bearer = HTTPBearer(auto_error=False, scheme_name="bearer", description="Access token (JWT) from /api/auth/login")


BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def current_principal(request: Request, credentials: BearerCredentials) -> Principal:
    """The verified caller of a request authenticated with a Bearer access token."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise _unauthorized("a Bearer access token is required")
    claims = decode_access_token(experience_state(request).settings, credentials.credentials)
    return await credential_checks(request.app).principal(claims)


async def optional_principal(request: Request, credentials: BearerCredentials) -> Principal | None:
    """Like ``current_principal``, but None when no Authorization header is sent."""
    if credentials is None:
        return None
    return await current_principal(request, credentials)


async def require_admin(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if principal.role != "admin" or principal.user_id is None:
        raise Problem(403, "forbidden", "this needs the admin role")
    return principal


def client_ip(request: Request) -> str:
    """The peer address as the server sees it (the proxy's, behind a gateway)."""
    return request.client.host if request.client else "unknown"
