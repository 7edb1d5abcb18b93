"""Is an access token's account still allowed? One query both planes use.

A JWT's signature proves who it was issued to; this says whether that still
holds: the user exists and is enabled, with which role and tenant, and
whether the token or its login (refresh family) was revoked.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from intentd.store.db import Store
from intentd.store.schema import refresh_tokens, revoked_tokens, users


@dataclass(frozen=True, slots=True)
class AccountState:
    tenant_id: str
    role: str
    disabled: bool


async def account_state(
    store: Store, user_id: str, jti: str, family_id: str | None
) -> tuple[AccountState | None, bool]:
    """(the user's state or None when gone, whether the token is revoked)."""
    revoked = sa.exists().where(revoked_tokens.c.jti == jti)
    if family_id is not None:
        revoked = sa.or_(
            revoked,
            sa.exists().where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_not(None)),
        )
    async with store.read() as conn:
        user = (
            await conn.execute(
                sa.select(users.c.tenant_id, users.c.role, users.c.disabled).where(users.c.id == user_id)
            )
        ).first()
        is_revoked = bool((await conn.execute(sa.select(revoked))).scalar())
    state = None if user is None else AccountState(user.tenant_id, user.role, bool(user.disabled))
    return state, is_revoked
