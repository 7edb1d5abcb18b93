"""Lookups by key that arrive together, answered by one read.

Made for bursts of one kind of lookup: a reconnect storm authenticates
hundreds of sockets at once, each by its session token's hash. One read for
all the keys waiting costs one reader-thread hop (SQLite) or one round trip
(PostgreSQL) instead of one per lookup. The first lookup of a quiet moment
is read at once; those that arrive while a read is in flight go together in
the next one (``intentd.batches``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from intentd.batches import Batches
from intentd.store.db import Store

# Keys per read: each is a bound parameter, and SQLite allows 32,766 to a statement.
MAX_KEYS = 500


class BatchedLookup:
    """``get(key)``: the row whose ``key_column`` is ``key``, or None.

    ``statement`` selects by an expanding bound parameter named ``keys``
    (``column.in_(sa.bindparam("keys", expanding=True))``) and returns
    ``key_column`` in its rows.
    """

    def __init__(self, store: Store, statement: sa.Select[Any], key_column: str) -> None:
        self._store = store
        self._statement = statement
        self._key_column = key_column
        self._batches: Batches[str, Any] = Batches(self._read, slots=1, take=lambda keys: min(len(keys), MAX_KEYS))

    async def get(self, key: str) -> Any:
        return await self._batches.submit(key)

    async def _read(self, keys: list[str]) -> list[Any]:
        unique = list(dict.fromkeys(keys))
        rows = await self._store.run_read(lambda conn: conn.execute(self._statement, {"keys": unique}).all())
        found = {getattr(row, self._key_column): row for row in rows}
        return [found.get(key) for key in keys]
