"""Lookups by key that arrive together, answered by one read.

Made for bursts of one kind of lookup: a reconnect storm authenticates
hundreds of sockets at once, each by its session token's hash. One read for
all the keys waiting costs one reader-thread hop (SQLite) or one round trip
(PostgreSQL) instead of one per lookup. The first lookup of a quiet moment
is read at once; those that arrive while a read is in flight go together in
the next one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa

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
        self._waiting: dict[str, list[asyncio.Future[Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def get(self, key: str) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read_while_waiting(), name="batched-lookup")
        return await future

    async def _read_while_waiting(self) -> None:
        while self._waiting:
            keys = list(self._waiting)[:MAX_KEYS]
            batch = {key: self._waiting.pop(key) for key in keys}
            try:
                rows = await self._store.run_read(lambda conn: conn.execute(self._statement, {"keys": keys}).all())
            except Exception as exc:  # each waiting lookup meets it; the next batch tries again
                for futures in batch.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                continue
            found = {getattr(row, self._key_column): row for row in rows}
            for key, futures in batch.items():
                for future in futures:
                    if not future.done():  # its caller may have given up (a cancelled handshake)
                        future.set_result(found.get(key))
