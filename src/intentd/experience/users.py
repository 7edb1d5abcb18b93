"""Users: creation with argon2 hashes, lookup, roles, disabling, and the bootstrap admin.

Hashing and verifying run in a worker thread: argon2 is deliberately slow
(tens of milliseconds) and must not stall the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any, TypeVar

import sqlalchemy as sa
import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError

from intentd.bus import CONTROL, Bus
from intentd.config import Settings, generate_secret
from intentd.experience import audit
from intentd.store import Store
from intentd.store.schema import refresh_tokens, sessions, users

log = structlog.get_logger("intentd.users")

ROLES = ("admin", "user")
DEFAULT_ADMIN_EMAIL = "admin@localhost"
DEFAULT_TENANT = "default"
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # argon2 of a megabyte-long password is a denial of service
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

_hasher = PasswordHasher()
# Hashing is slow on purpose: threads of its own, so that a burst of logins
# never queues other work (the loop's default executor is DBOS's 8 threads).
_hashing = ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="intentd-hash")
T = TypeVar("T")


class UserError(ValueError):
    """A user could not be created or changed; ``code`` is the API's stable code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 320 or not _EMAIL.match(email):
        raise UserError("invalid_email", "not a valid email address")
    return email


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError("weak_password", f"the password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError("invalid_password", f"the password may have at most {MAX_PASSWORD} characters")


def check_tenant(tenant_id: str) -> str:
    if not _TENANT.match(tenant_id):
        raise UserError("invalid_tenant", "a tenant id is 1-64 letters, digits, '.', '_' or '-'")
    return tenant_id


async def _in_hashing_thread(fn: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(_hashing, fn)


async def hash_password(password: str) -> str:
    return await _in_hashing_thread(partial(_hasher.hash, password))


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash(generate_secret())


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant work whether or not the user exists: unknown users verify against a dummy hash."""
    target = password_hash or await _in_hashing_thread(_dummy_hash)

    def verify() -> bool:
        try:
            return _hasher.verify(target, password[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError):
            return False

    ok = await _in_hashing_thread(verify)
    return ok and password_hash is not None


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    tenant_id: str
    role: str
    disabled: bool
    created_at: float
    password_hash: str

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "tenant_id": self.tenant_id,
            "role": self.role,
            "disabled": self.disabled,
            "created_at": self.created_at,
        }


def _user(row: Any) -> User:
    return User(
        id=row.id,
        email=row.email,
        tenant_id=row.tenant_id,
        role=row.role,
        disabled=bool(row.disabled),
        created_at=row.created_at,
        password_hash=row.password_hash,
    )


async def create_user(
    store: Store,
    *,
    email: str,
    password: str,
    tenant_id: str = DEFAULT_TENANT,
    role: str = "user",
    audit_event: audit.AuditEvent | None = None,
) -> User:
    """Create a user (``UserError`` ``email_taken`` when the email exists).

    ``audit_event`` (its target is filled in) is recorded in the same transaction.
    """
    email = normalize_email(email)
    check_password(password)
    check_tenant(tenant_id)
    if role not in ROLES:
        raise UserError("invalid_role", f"role must be one of {', '.join(ROLES)}")
    user = User(
        id=str(uuid.uuid4()),
        email=email,
        tenant_id=tenant_id,
        role=role,
        disabled=False,
        created_at=time.time(),
        password_hash=await hash_password(password),
    )
    try:
        async with store.tx() as conn:
            await conn.execute(
                users.insert().values(
                    id=user.id,
                    email=user.email,
                    tenant_id=user.tenant_id,
                    role=user.role,
                    disabled=False,
                    created_at=user.created_at,
                    password_hash=user.password_hash,
                )
            )
            if audit_event is not None:
                await audit.append_in(
                    conn,
                    audit.AuditEvent(
                        action=audit_event.action,
                        tenant_id=user.tenant_id,
                        actor_id=audit_event.actor_id,
                        target=user.id,
                        detail={"email": user.email, "role": user.role, **audit_event.detail},
                        ip=audit_event.ip,
                    ),
                )
    except IntegrityError:
        raise UserError("email_taken", "a user with this email exists") from None
    return user


async def get_user(store: Store, user_id: str) -> User | None:
    async with store.read() as conn:
        row = (await conn.execute(sa.select(users).where(users.c.id == user_id))).first()
    return None if row is None else _user(row)


async def get_user_by_email(store: Store, email: str) -> User | None:
    try:
        email = normalize_email(email)
    except UserError:
        return None
    async with store.read() as conn:
        row = (await conn.execute(sa.select(users).where(users.c.email == email))).first()
    return None if row is None else _user(row)


async def list_users(store: Store, tenant_id: str | None = None) -> list[User]:
    stmt = sa.select(users).order_by(users.c.created_at, users.c.email)
    if tenant_id is not None:
        stmt = stmt.where(users.c.tenant_id == tenant_id)
    async with store.read() as conn:
        return [_user(row) for row in await conn.execute(stmt)]


async def set_role(store: Store, bus: Bus | None, user: User, role: str, *, audit_event: audit.AuditEvent) -> User:
    if role not in ROLES:
        raise UserError("invalid_role", f"role must be one of {', '.join(ROLES)}")
    async with store.tx() as conn:
        await conn.execute(users.update().where(users.c.id == user.id).values(role=role))
        await audit.append_in(conn, _targeted(audit_event, user, {"from": user.role, "to": role}))
    if bus is not None:
        await bus.publish(CONTROL, {"type": "user.changed", "user_id": user.id})
    return dataclasses.replace(user, role=role)


async def set_disabled(
    store: Store, bus: Bus | None, user: User, disabled: bool, *, audit_event: audit.AuditEvent
) -> User:
    """Disable (revoking refresh tokens and sessions, closing sockets) or re-enable a user."""
    now = time.time()
    revoked_sessions: list[str] = []
    async with store.tx() as conn:
        await conn.execute(users.update().where(users.c.id == user.id).values(disabled=disabled))
        if disabled:
            await conn.execute(
                refresh_tokens.update()
                .where(refresh_tokens.c.user_id == user.id, refresh_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            revoked_sessions = list(
                (
                    await conn.execute(
                        sa.select(sessions.c.id).where(sessions.c.user_id == user.id, sessions.c.revoked_at.is_(None))
                    )
                ).scalars()
            )
            if revoked_sessions:
                await conn.execute(sessions.update().where(sessions.c.id.in_(revoked_sessions)).values(revoked_at=now))
        await audit.append_in(conn, _targeted(audit_event, user, {"sessions_revoked": len(revoked_sessions)}))
    if bus is not None:
        if disabled:
            await bus.publish(CONTROL, {"type": "user.disabled", "user_id": user.id})
            for session_id in revoked_sessions:
                await bus.publish(CONTROL, {"type": "session.revoked", "session_id": session_id})
        else:
            await bus.publish(CONTROL, {"type": "user.changed", "user_id": user.id})
    return dataclasses.replace(user, disabled=disabled)


def _targeted(event: audit.AuditEvent, user: User, detail: dict[str, Any]) -> audit.AuditEvent:
    return audit.AuditEvent(
        action=event.action,
        tenant_id=user.tenant_id,
        actor_id=event.actor_id,
        target=user.id,
        detail={"email": user.email, **detail, **event.detail},
        ip=event.ip,
    )


async def ensure_admin(store: Store, settings: Settings) -> str | None:
    """Make sure the bootstrap admin exists; the generated password when one was made, else None.

    ``INTENTD_ADMIN_EMAIL`` / ``INTENTD_ADMIN_PASSWORD`` name the admin; without
    a password one is generated. Without either, ``admin@localhost`` is created
    on first start only (when the store has no admin at all). An existing user
    is never changed: the environment seeds, it does not overwrite.
    """
    email = normalize_email(settings.admin_email or DEFAULT_ADMIN_EMAIL)
    if settings.admin_email is None:
        async with store.read() as conn:
            has_admin = (await conn.execute(sa.select(sa.exists().where(users.c.role == "admin")))).scalar()
        if has_admin:
            return None
    if await get_user_by_email(store, email) is not None:
        return None
    generated = None if settings.admin_password else generate_secret(18)
    try:
        await create_user(
            store,
            email=email,
            password=settings.admin_password or generated,  # type: ignore[arg-type]
            tenant_id=DEFAULT_TENANT,
            role="admin",
            audit_event=audit.AuditEvent(action="user.created", tenant_id=DEFAULT_TENANT, detail={"bootstrap": True}),
        )
    except UserError as exc:
        if exc.code == "email_taken":  # another replica won the race
            return None
        raise
    log.info("bootstrap admin created", email=email)
    return generated
