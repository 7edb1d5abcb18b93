"""The audit log: admin actions and security events, per tenant.

Actions (stable names): ``login.succeeded``, ``login.failed``,
``token.reused``, ``logout``, ``user.created``, ``user.registered``,
``user.disabled``, ``user.enabled``, ``user.role_changed``,
``session.revoked``, ``execution.cancelled``, ``execution.retried``.
(Refreshes are not recorded: they happen every few minutes per client.)
Details never hold a token, password or secret.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from intentd.problems import Problem
from intentd.store import Store
from intentd.store.schema import audit_log

log = structlog.get_logger("intentd.audit")


@dataclass(frozen=True, slots=True)
class AuditEvent:
    action: str
    tenant_id: str | None
    actor_id: str | None = None
    target: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    ip: str | None = None


async def append_in(conn: AsyncConnection, event: AuditEvent) -> None:
    """Record inside the caller's transaction, so the action and its record commit together."""
    await conn.execute(
        audit_log.insert().values(
            tenant_id=event.tenant_id,
            actor_id=event.actor_id,
            action=event.action,
            target=(event.target or "")[:200] or None,
            detail=event.detail,
            ip=(event.ip or "")[:64] or None,
            created_at=time.time(),
        )
    )
    log.info("audit", action=event.action, tenant_id=event.tenant_id, actor_id=event.actor_id, target=event.target)


async def append(store: Store, event: AuditEvent) -> None:
    async with store.tx() as conn:
        await append_in(conn, event)


async def query(
    store: Store, tenant_id: str, *, limit: int = 50, cursor: str | None = None, action: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """A tenant's audit events, newest first; the cursor continues after the last item."""
    stmt = sa.select(
        audit_log.c.id,
        audit_log.c.actor_id,
        audit_log.c.action,
        audit_log.c.target,
        audit_log.c.detail,
        audit_log.c.ip,
        audit_log.c.created_at,
    ).where(audit_log.c.tenant_id == tenant_id)
    if action:
        stmt = stmt.where(audit_log.c.action == action)
    if cursor is not None:
        stmt = stmt.where(audit_log.c.id < _decode_cursor(cursor))
    stmt = stmt.order_by(audit_log.c.id.desc()).limit(limit + 1)
    async with store.read() as conn:
        found = [dict(row._mapping) for row in await conn.execute(stmt)]
    next_cursor = str(found[limit - 1]["id"]) if len(found) > limit else None
    return found[:limit], next_cursor


def _decode_cursor(cursor: str) -> int:
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 18:  # "³".isdigit() is True
        raise Problem(422, "invalid_request", "the cursor is not valid", errors=[
            {"loc": ["query", "cursor"], "type": "value_error", "msg": "not a cursor from this API"}
        ])
    return int(cursor)
