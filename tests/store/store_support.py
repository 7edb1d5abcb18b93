"""Helpers of the store tests."""

from __future__ import annotations

import time

import sqlalchemy as sa

from intentd.store import Store
from intentd.store.migrate import upgrade_async
from intentd.store.schema import sessions


async def store_with_session(url: str) -> Store:
    """A migrated store holding session s1 of tenant t."""
    await upgrade_async(url)
    store = Store(url)
    now = time.time()
    async with store.tx() as conn:
        await conn.execute(sa.insert(sessions).values(
            id="s1", tenant_id="t", token_hash="h", metadata={}, context={}, created_at=now, expires_at=now + 60))
    return store
