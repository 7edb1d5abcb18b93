"""The session event log: append with a gapless per-session ``seq``, read back for replay.

Appends are group-committed: concurrent callers' events are written in one
transaction, in arrival order, and each caller awaits its own outcome. An
event is published on the bus only after its transaction commits, so anything
a client receives live is already durable and replayable; publishing runs
beside the writer, in commit order, while the next batch is written.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import cache, partial
from typing import Any

import orjson
import sqlalchemy as sa
import structlog
from sqlalchemy.exc import IntegrityError

from intentd.bus import EVENTS, Bus
from intentd.store.db import Store, native_statement, retry_transient
from intentd.store.schema import events, executions, sessions

log = structlog.get_logger("intentd.events")

_BATCH_MAX = 256


@dataclass(slots=True)
class NewEvent:
    type: str
    data: dict[str, Any]
    session_id: str | None = None
    execution_id: str | None = None
    n: int | None = None  # the event's index within its execution: the dedup key
    # Columns of the execution row changed in the same transaction (status, result...).
    execution_update: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)


def wire(row: dict[str, Any]) -> dict[str, Any]:
    """The shape clients see: stable keys, no storage columns."""
    return {
        "type": row["type"],
        "seq": row["seq"],
        "session_id": row["session_id"],
        "execution_id": row["execution_id"],
        "n": row["n"],
        "data": row["data"],
        "created_at": row["created_at"],
    }


def event_row(event: NewEvent, seq: int | None) -> dict[str, Any]:
    """The ``events`` row of ``event`` recorded with ``seq`` (none: no session's stream)."""
    return {
        "execution_id": event.execution_id,
        "n": event.n,
        "session_id": event.session_id if seq is not None else None,
        "seq": seq,
        "type": event.type,
        "data": event.data,
        "created_at": event.created_at,
    }


def insert_first(conn: sqlite3.Connection, event: NewEvent, seq: int | None) -> dict[str, Any]:
    """SQLite: the first event of a new execution, with the seq the caller reserved in its transaction."""
    row = event_row(event, seq)
    conn.execute(_INSERT_EVENT_SQLITE, _sqlite_params(row))
    return wire(row)


def append_in(store: Store, conn: sa.Connection, event: NewEvent) -> dict[str, Any] | None:
    """Append inside the caller's transaction. None when (execution_id, n) exists already."""
    seq = None
    if event.session_id is not None:
        seq = conn.execute(
            sa.update(sessions)
            .where(sessions.c.id == event.session_id)
            .values(last_seq=sessions.c.last_seq + 1)
            .returning(sessions.c.last_seq)
        ).scalar_one_or_none()
    row = event_row(event, seq)
    inserted = conn.execute(
        store.insert(events)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["execution_id", "n"])
        .returning(events.c.id)
    ).scalar_one_or_none()
    if inserted is None:  # a replay after recovery: already recorded
        if seq is not None:  # hand the seq back; we still hold the session row lock
            conn.execute(
                sa.update(sessions)
                .where(sessions.c.id == event.session_id)
                .values(last_seq=sessions.c.last_seq - 1)
            )
        return _diverged(store, conn, event)
    if event.execution_id is not None and event.execution_update:
        conn.execute(
            sa.update(executions)
            .where(executions.c.id == event.execution_id)
            .values(**event.execution_update)
        )
    return wire(row)


OUTCOMES = frozenset({"execution.completed", "execution.failed", "execution.cancelled"})
# The execution columns an event may change (``NewEvent.execution_update``).
CHANGEABLE = frozenset({"status", "result", "error_code", "error_message", "progress", "progress_message",
                        "started_at", "finished_at"})


def _diverged(store: Store, conn: sa.Connection, event: NewEvent) -> dict[str, Any] | None:
    """A replay re-appended (execution, n): normally the same event, ignored.

    When the recorded event is a different one, the replay diverged from the
    first run (a bug in a handler or in us). Say so loudly, and never drop an
    outcome because of it: an execution without one would be stuck forever.
    """
    recorded = conn.execute(
        sa.select(events.c.type).where(events.c.execution_id == event.execution_id, events.c.n == event.n)
    ).scalar_one_or_none()
    if recorded is None or recorded == event.type:
        return None
    log.error("replay diverged from the recorded events", execution_id=event.execution_id, n=event.n,
              recorded=recorded, replayed=event.type)
    if event.type not in OUTCOMES:
        return None
    has_outcome = conn.execute(
        sa.select(sa.func.count()).where(events.c.execution_id == event.execution_id, events.c.type.in_(OUTCOMES))
    ).scalar_one()
    if has_outcome:
        return None
    last_n = conn.execute(
        sa.select(sa.func.max(events.c.n)).where(events.c.execution_id == event.execution_id)
    ).scalar_one()
    event.n = last_n + 1
    return append_in(store, conn, event)


class EventLog:
    def __init__(self, store: Store, bus: Bus) -> None:
        self.store = store
        self.bus = bus
        self._queue: asyncio.Queue[tuple[NewEvent, asyncio.Future[dict[str, Any] | None]]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        # Recorded, not yet published; the publisher takes it all at once, in order.
        self._outbox: list[dict[str, Any]] = []
        self._outbox_filled = asyncio.Event()
        self._closing = False
        self._publisher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._writer = asyncio.create_task(self._write_forever(), name="event-log-writer")
        self._publisher = asyncio.create_task(self._publish_forever(), name="event-log-publisher")

    async def close(self) -> None:
        """Stop writing; publish what was recorded before."""
        if self._writer:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._publisher:
            self._closing = True
            self._outbox_filled.set()
            await asyncio.gather(self._publisher, return_exceptions=True)

    async def append(self, event: NewEvent) -> dict[str, Any] | None:
        """Record one event durably and publish it. None when it was a duplicate."""
        if not event.execution_update.keys() <= CHANGEABLE:
            raise ValueError(f"an event cannot change {sorted(event.execution_update.keys() - CHANGEABLE)}")
        future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((event, future))
        return await future

    def publish_soon(self, recorded: list[dict[str, Any]]) -> None:
        """Publish events recorded elsewhere (acceptances), after those recorded here before them.

        Without waiting: an execution starts while its ``execution.accepted``
        is on its way, a round trip to the bus sooner.
        """
        if recorded:
            self._outbox += recorded
            self._outbox_filled.set()

    async def publish(self, recorded: list[dict[str, Any]]) -> None:
        """Best effort: a subscriber that misses an event reads it from the log."""
        if not self.bus.healthy:
            return  # don't stall appends on a bus that is down
        if not recorded:
            return
        try:
            await self.bus.publish(EVENTS, *recorded)
        except Exception:
            log.exception("publishing events failed")

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < _BATCH_MAX and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                results = await retry_transient(lambda: self._write(batch), what="event log append")
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)
            # Published by another task: the next batch is written meanwhile.
            self.publish_soon([r for r in results if r is not None])

    async def _publish_forever(self) -> None:
        while not (self._closing and not self._outbox):
            await self._outbox_filled.wait()
            self._outbox_filled.clear()
            recorded, self._outbox = self._outbox, []
            await self.publish(recorded)

    async def _write(self, batch: list[tuple[NewEvent, Any]]) -> list[dict[str, Any] | None]:
        appended = [event for event, _ in batch]
        try:
            if self.store.dialect == "postgresql":
                return await append_batch_postgresql(self.store, appended)
            return await self.store.write_native(partial(append_batch_sqlite, batch=appended))
        except (_Recorded, IntegrityError):
            # A replay re-appended an event (or two replicas replaying the same
            # execution raced): one by one, so that only those come back as
            # duplicates and the rest keep their order.
            results: list[dict[str, Any] | None] = []
            for event, _ in batch:
                try:
                    results.append(await self.store.run_write(partial(append_in, self.store, event=event)))
                except IntegrityError:
                    results.append(None)
            return results


class _Recorded(Exception):
    """Part of a batch was recorded before: roll the batch back and go one by one."""


def append_batch_sqlite(conn: sqlite3.Connection, batch: list[NewEvent]) -> list[dict[str, Any]]:
    """Append ``batch`` in order inside the caller's SQLite transaction, in a few statements.

    One UPDATE reserves the seqs of every session in the batch, one
    executemany writes the events, one executemany per set of changed
    columns applies the executions' merged changes. Raises ``_Recorded``
    when an event was recorded already (a replay after recovery).
    """
    counts = Counter(event.session_id for event in batch if event.session_id is not None)
    next_seq: dict[str, int] = {}
    if counts:
        reserved = conn.execute(_RESERVE_SEQS_SQLITE, {"counts": orjson.dumps(counts).decode()})
        # A session deleted meanwhile keeps none of these events.
        next_seq = {session_id: last_seq - counts[session_id] + 1 for session_id, last_seq in reserved}
    rows: list[dict[str, Any]] = []
    for event in batch:
        seq = next_seq.get(event.session_id) if event.session_id is not None else None
        if seq is not None:
            next_seq[event.session_id] = seq + 1  # type: ignore[index]
        rows.append(event_row(event, seq))
    changes = _merged_changes(batch)
    inserted = conn.executemany(_INSERT_EVENT_SQLITE, [_sqlite_params(row) for row in rows]).rowcount
    if inserted != len(rows):
        raise _Recorded
    # One executemany per set of changed columns.
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for execution_id in sorted(changes):
        change = changes[execution_id]
        by_columns.setdefault(tuple(sorted(change)), []).append({
            "eid": execution_id,
            **{column: orjson.dumps(value).decode() if column in _JSON_COLUMNS else value
               for column, value in change.items()},
        })
    for columns, params in by_columns.items():
        conn.executemany(_update_execution_sqlite(columns), params)
    return [wire(row) for row in rows]


def _sqlite_params(row: dict[str, Any]) -> dict[str, Any]:
    """An ``events`` row as sqlite3 takes it: its data as JSON text."""
    return {**row, "data": orjson.dumps(row["data"]).decode()}


@cache
def _update_execution_sqlite(columns: tuple[str, ...]) -> str:
    if not set(columns) <= CHANGEABLE:  # names go into the statement: only the known ones
        raise ValueError(f"an event cannot change {sorted(set(columns) - CHANGEABLE)}")
    return f"UPDATE executions SET {', '.join(f'{column} = :{column}' for column in columns)} WHERE id = :eid"


def _merged_changes(batch: list[NewEvent]) -> dict[str, dict[str, Any]]:
    """Each execution's changes in ``batch``, a later event's value winning."""
    changes: dict[str, dict[str, Any]] = {}
    for event in batch:
        if event.execution_id is not None and event.execution_update:
            changes.setdefault(event.execution_id, {}).update(event.execution_update)
    return changes


async def append_batch_postgresql(store: Store, batch: list[NewEvent]) -> list[dict[str, Any]]:
    """``append_batch_sqlite`` on PostgreSQL as one statement, its own transaction: one round trip.

    Each statement of a transaction waits its turn on a busy event loop: as
    six (BEGIN, lock, seqs, events, executions, COMMIT) they made the log's
    single writer the runtime's bottleneck. Raises
    ``IntegrityError`` when an event was recorded already (a replay), and
    nothing is written.
    """
    so_far: Counter[str] = Counter()
    positions: list[int | None] = []  # each event's place among its session's events in this batch
    for event in batch:
        if event.session_id is None:
            positions.append(None)
        else:
            so_far[event.session_id] += 1
            positions.append(so_far[event.session_id])
    changes = _merged_changes(batch)
    params = {
        "execution_id": [event.execution_id for event in batch], "n": [event.n for event in batch],
        "session_id": [event.session_id for event in batch], "k": positions,
        "type": [event.type for event in batch], "data": [orjson.dumps(event.data).decode() for event in batch],
        "created_at": [event.created_at for event in batch],
        "eid": list(changes), "change": [orjson.dumps(change).decode() for change in changes.values()],
    }
    rows = await store.fetch_native(_APPEND_POSTGRESQL, params)
    return [wire(event_row(event, row["seq"])) for event, row in zip(batch, rows, strict=True)]


# SQLite's statements, run on sqlite3 directly (``Store.write_native``): the
# event log is the hottest write path. JSON columns are written as JSON text,
# as SQLAlchemy's JSON type writes them.
# Every session's seqs in one statement, whatever the batch: {session id: count} as JSON.
_RESERVE_SEQS_SQLITE = (
    "UPDATE sessions SET last_seq = sessions.last_seq + reserved.value"
    " FROM json_each(:counts) AS reserved WHERE sessions.id = reserved.key"
    " RETURNING sessions.id, sessions.last_seq"
)
_INSERT_EVENT_SQLITE = (
    "INSERT INTO events (execution_id, n, session_id, seq, type, data, created_at)"
    " VALUES (:execution_id, :n, :session_id, :seq, :type, :data, :created_at)"
    " ON CONFLICT (execution_id, n) DO NOTHING"
)
_JSON_COLUMNS = frozenset(column.name for column in executions.c if isinstance(column.type, sa.JSON))


# ``append_batch_postgresql``'s statement. The sessions are locked first, in id
# order (the scalar subquery runs once, before the UPDATE reads a row): two
# replicas whose batches share sessions wait for each other, never deadlock.
# A session deleted meanwhile takes no seq, and its events keep none.
# The executions' merged changes: each column is set only when its key is there.
_APPEND_POSTGRESQL = native_statement("""
WITH input AS (
    SELECT * FROM unnest(
        CAST(:execution_id AS varchar[]), CAST(:n AS int[]), CAST(:session_id AS varchar[]), CAST(:k AS int[]),
        CAST(:type AS varchar[]), CAST(:data AS text[]), CAST(:created_at AS float8[])
    ) WITH ORDINALITY AS i(execution_id, n, session_id, k, type, data, created_at, ord)
), counts AS (
    SELECT session_id, max(k) AS taken FROM input WHERE session_id IS NOT NULL GROUP BY session_id
), locked AS (
    SELECT s.id FROM sessions s WHERE s.id IN (SELECT session_id FROM counts) ORDER BY s.id FOR UPDATE
), reserved AS (
    UPDATE sessions s SET last_seq = s.last_seq + c.taken
    FROM counts c
    WHERE s.id = c.session_id AND (SELECT count(*) FROM locked) >= 0
    RETURNING s.id, s.last_seq - c.taken AS before
), numbered AS (
    SELECT i.*, r.id AS kept_session, r.before + i.k AS seq FROM input i LEFT JOIN reserved r ON r.id = i.session_id
), recorded AS (
    INSERT INTO events (execution_id, n, session_id, seq, type, data, created_at)
    SELECT execution_id, n, kept_session, seq, type, CAST(data AS jsonb), created_at FROM numbered ORDER BY ord
), changed AS (
    UPDATE executions x SET
        status = CASE WHEN u.c ? 'status' THEN u.c->>'status' ELSE x.status END,
        result = CASE WHEN u.c ? 'result' THEN u.c->'result' ELSE x.result END,
        error_code = CASE WHEN u.c ? 'error_code' THEN u.c->>'error_code' ELSE x.error_code END,
        error_message = CASE WHEN u.c ? 'error_message' THEN u.c->>'error_message' ELSE x.error_message END,
        progress = CASE WHEN u.c ? 'progress' THEN CAST(u.c->>'progress' AS float8) ELSE x.progress END,
        progress_message = CASE WHEN u.c ? 'progress_message' THEN u.c->>'progress_message'
                                ELSE x.progress_message END,
        started_at = CASE WHEN u.c ? 'started_at' THEN CAST(u.c->>'started_at' AS float8) ELSE x.started_at END,
        finished_at = CASE WHEN u.c ? 'finished_at' THEN CAST(u.c->>'finished_at' AS float8) ELSE x.finished_at END
    FROM unnest(CAST(:eid AS varchar[]), CAST(:change AS jsonb[])) AS u(eid, c)
    WHERE x.id = u.eid
)
SELECT seq FROM numbered ORDER BY ord
""")


_SESSION_EVENTS = (
    sa.select(events)
    .where(events.c.session_id == sa.bindparam("sid"), events.c.seq > sa.bindparam("after"))
    .order_by(events.c.seq)
    .limit(sa.bindparam("limit"))
)
_EXECUTION_EVENTS = (
    sa.select(events)
    .where(events.c.execution_id == sa.bindparam("eid"), events.c.n > sa.bindparam("after"))
    .order_by(events.c.n)
    .limit(sa.bindparam("limit"))
)


async def read_session(
    store: Store, session_id: str, after_seq: int = 0, limit: int = 1000
) -> list[dict[str, Any]]:
    params = {"sid": session_id, "after": after_seq, "limit": limit}
    return await store.run_read(lambda conn: [wire(row._mapping) for row in conn.execute(_SESSION_EVENTS, params)])


async def read_execution(
    store: Store, execution_id: str, after_n: int = -1, limit: int = 1000
) -> list[dict[str, Any]]:
    params = {"eid": execution_id, "after": after_n, "limit": limit}
    return await store.run_read(lambda conn: [wire(row._mapping) for row in conn.execute(_EXECUTION_EVENTS, params)])


async def prune(store: Store, older_than: float) -> int:
    """Delete events older than ``older_than``, but never those of unfinished executions:
    a replay after recovery would otherwise append them again."""
    unfinished = sa.select(executions.c.id).where(executions.c.status.not_in(("completed", "failed", "cancelled")))
    async with store.tx() as conn:
        result = await conn.execute(
            sa.delete(events).where(
                events.c.created_at < older_than,
                sa.or_(events.c.execution_id.is_(None), events.c.execution_id.not_in(unfinished)),
            )
        )
        return result.rowcount or 0
