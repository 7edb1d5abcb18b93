"""Accepting an execution: its row and its ``execution.accepted`` event, atomically.

The event takes the session's next seq. Nothing is written when the
execution id exists already (an idempotent resubmission) or the session is
not the tenant's. ``accept_many`` accepts a batch in one transaction, each
execution with its own outcome (on PostgreSQL in one statement).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable
from functools import partial
from typing import Any

import orjson

from intentd.store.db import Store, native_statement
from intentd.store.events import NewEvent, event_row, insert_first, wire

ACCEPTED = "execution.accepted"


class Duplicate(Exception):
    """The execution id exists already."""


class UnknownSession(Exception):
    """No such session in this tenant."""


async def accept(store: Store, values: dict[str, Any]) -> dict[str, Any]:
    """Insert the execution row ``values`` and its first event; returns the event as clients see it."""
    if store.dialect == "postgresql":
        return await _accept_in_one_statement(store, values)
    return await store.write_native(partial(_accept_in, values=values))


# The event as clients see it; Duplicate, UnknownSession or a database error when nothing was written.
Outcome = dict[str, Any] | Exception


async def accept_many(store: Store, batch: list[dict[str, Any]]) -> list[Outcome]:
    """``accept`` for each of ``batch``, in order: its outcome, an exception returned, not raised.

    The batch is one transaction: a database error is raised, and nothing was written.
    """
    if not batch:  # every item of a request was invalid: nothing to ask the database
        return []
    if len(batch) == 1:
        return [await _outcome(accept(store, batch[0]))]
    if store.dialect == "sqlite":
        return await store.write_native(partial(_accept_each_in, batch=batch))
    # An id twice in the batch (one idempotency key, twice): the first is accepted, the rest are its duplicates.
    first: dict[str, int] = {}
    for index, values in enumerate(batch):
        first.setdefault(values["id"], index)
    unique = [batch[index] for index in sorted(first.values())]
    events = [_accepted(values) for values in unique]
    params = {column: [values[column] for values in unique] for column in _ACCEPT_MANY_COLUMNS}
    params["params"] = [orjson.dumps(values["params"]).decode() for values in unique]
    params["data"] = [orjson.dumps(event.data).decode() for event in events]
    params["type"] = ACCEPTED
    rows = await store.fetch_native(_ACCEPT_MANY_POSTGRESQL, params)  # one statement: one round trip
    outcomes: dict[str, Outcome] = {}
    for row, values, event in zip(rows, unique, events, strict=True):
        if row["inserted"]:
            outcomes[values["id"]] = wire(event_row(event, row["seq"]))
        elif values["session_id"] is not None and not row["session_found"]:
            outcomes[values["id"]] = UnknownSession()
        else:
            outcomes[values["id"]] = Duplicate()
    return [
        outcomes[values["id"]] if first[values["id"]] == index or isinstance(outcomes[values["id"]], UnknownSession)
        else Duplicate()
        for index, values in enumerate(batch)
    ]


async def _outcome(accepting: Awaitable[dict[str, Any]]) -> Outcome:
    try:
        return await accepting
    except Exception as refused:
        return refused


def _accept_each_in(conn: sqlite3.Connection, batch: list[dict[str, Any]]) -> list[Outcome]:
    """SQLite: one transaction (one commit) for the batch; a savepoint each, so a refusal undoes only its own."""
    outcomes: list[Outcome] = []
    for values in batch:
        conn.execute("SAVEPOINT accept")
        try:
            outcomes.append(_accept_in(conn, values))
        except (Duplicate, UnknownSession) as refused:
            conn.execute("ROLLBACK TO accept")
            outcomes.append(refused)
        conn.execute("RELEASE accept")
    return outcomes


def _accepted(values: dict[str, Any]) -> NewEvent:
    return NewEvent(ACCEPTED, {"intent": values["intent"], "params": values["params"]},
                    session_id=values["session_id"], execution_id=values["id"], n=0,
                    created_at=values["created_at"])


def _accept_in(conn: sqlite3.Connection, values: dict[str, Any]) -> dict[str, Any]:
    """SQLite, inside the caller's transaction, on sqlite3 directly (``Store.write_native``)."""
    seq = None
    if values["session_id"] is not None:
        taken = conn.execute(_NEXT_SEQ_SQLITE, values).fetchone()
        if taken is None:
            raise UnknownSession
        seq = taken[0]
    if conn.execute(_INSERT_EXECUTION_SQLITE, {**values, "params": orjson.dumps(values["params"]).decode()}
                    ).fetchone() is None:
        raise Duplicate  # rolls back the seq taken above
    return insert_first(conn, _accepted(values), seq)


async def _accept_in_one_statement(store: Store, values: dict[str, Any]) -> dict[str, Any]:
    # One statement is its own transaction: one round trip instead of five
    # (BEGIN, seq, row, event, COMMIT), each of which waits its turn on a busy
    # event loop. The seq is taken only once the row is in, so a duplicate
    # hands none out.
    event = _accepted(values)
    params = {
        **values, "params": orjson.dumps(values["params"]).decode(),
        "data": orjson.dumps(event.data).decode(), "type": event.type,
    }
    [outcome] = await store.fetch_native(_ACCEPT_POSTGRESQL, params)
    if not outcome["inserted"]:
        if values["session_id"] is not None and not outcome["session_found"]:
            raise UnknownSession
        raise Duplicate
    # A session deleted between the statement's check and its update keeps no seq.
    return wire(event_row(event, outcome["seq"]))


# SQLite: the session's next seq, if the session belongs to the tenant.
_NEXT_SEQ_SQLITE = (
    "UPDATE sessions SET last_seq = last_seq + 1 WHERE id = :session_id AND tenant_id = :tenant_id RETURNING last_seq"
)
_INSERT_EXECUTION_SQLITE = (
    "INSERT INTO executions (id, tenant_id, user_id, session_id, parent_id, retry_of, intent, params,"
    " params_hash, idempotency_key, status, created_at)"
    " VALUES (:id, :tenant_id, :user_id, :session_id, :parent_id, :retry_of, :intent, :params,"
    " :params_hash, :idempotency_key, :status, :created_at)"
    " ON CONFLICT DO NOTHING RETURNING id"
)
# The session row is locked before the execution row goes in, as a batch
# (``accept_many``) does: a batch and this statement accepting the same
# execution wait for each other rather than deadlock.
_ACCEPT_POSTGRESQL = native_statement("""
WITH own_session AS (
    SELECT 1 FROM sessions WHERE id = CAST(:session_id AS varchar) AND tenant_id = :tenant_id FOR UPDATE
), execution AS (
    INSERT INTO executions (id, tenant_id, user_id, session_id, parent_id, retry_of, intent, params,
                            params_hash, idempotency_key, status, created_at)
    SELECT :id, :tenant_id, :user_id, :session_id, :parent_id, :retry_of, :intent, CAST(:params AS json),
           :params_hash, :idempotency_key, :status, :created_at
    WHERE CAST(:session_id AS varchar) IS NULL OR EXISTS (SELECT 1 FROM own_session)
    ON CONFLICT DO NOTHING
    RETURNING id
), next_seq AS (
    UPDATE sessions SET last_seq = last_seq + 1
    WHERE id = CAST(:session_id AS varchar) AND tenant_id = :tenant_id AND EXISTS (SELECT 1 FROM execution)
    RETURNING last_seq
), event AS (
    INSERT INTO events (execution_id, n, session_id, seq, type, data, created_at)
    SELECT id, 0, (SELECT CAST(:session_id AS varchar) FROM next_seq), (SELECT last_seq FROM next_seq),
           :type, CAST(:data AS json), :created_at
    FROM execution
    RETURNING seq
)
SELECT EXISTS (SELECT 1 FROM execution) AS inserted,
       EXISTS (SELECT 1 FROM own_session) AS session_found,
       (SELECT seq FROM event) AS seq
""")

_ACCEPT_MANY_COLUMNS = ("id", "tenant_id", "user_id", "session_id", "parent_id", "retry_of", "intent",
                        "params_hash", "idempotency_key", "created_at")
# The statement above for many executions: in the batch's order, each session's
# executions take its next seqs, one each, only for the rows that went in.
# The batch's sessions are locked first, in id order, as the event log does
# (the scalar subquery runs once, before the first row goes in): two batches
# over the same sessions, or the same executions, wait for each other.
_ACCEPT_MANY_POSTGRESQL = native_statement("""
WITH input AS (
    SELECT * FROM unnest(
        CAST(:id AS varchar[]), CAST(:tenant_id AS varchar[]), CAST(:user_id AS varchar[]),
        CAST(:session_id AS varchar[]), CAST(:parent_id AS varchar[]), CAST(:retry_of AS varchar[]),
        CAST(:intent AS varchar[]), CAST(:params AS text[]), CAST(:params_hash AS varchar[]),
        CAST(:idempotency_key AS varchar[]), CAST(:created_at AS float8[]), CAST(:data AS text[])
    ) WITH ORDINALITY AS i(id, tenant_id, user_id, session_id, parent_id, retry_of, intent, params, params_hash,
                           idempotency_key, created_at, data, ord)
), checked AS (
    SELECT i.*, i.session_id IS NULL OR EXISTS (
        SELECT 1 FROM sessions s WHERE s.id = i.session_id AND s.tenant_id = i.tenant_id
    ) AS session_found
    FROM input i
), locked AS (
    SELECT s.id FROM sessions s WHERE s.id IN (SELECT session_id FROM input) ORDER BY s.id FOR UPDATE
), execution AS (
    INSERT INTO executions (id, tenant_id, user_id, session_id, parent_id, retry_of, intent, params,
                            params_hash, idempotency_key, status, created_at)
    SELECT id, tenant_id, user_id, session_id, parent_id, retry_of, intent, CAST(params AS json),
           params_hash, idempotency_key, 'accepted', created_at
    FROM checked WHERE session_found AND (SELECT count(*) FROM locked) >= 0
    ORDER BY ord
    ON CONFLICT DO NOTHING
    RETURNING id
), numbered AS (
    SELECT c.id, c.session_id, row_number() OVER (PARTITION BY c.session_id ORDER BY c.ord) AS k
    FROM checked c JOIN execution e ON e.id = c.id
    WHERE c.session_id IS NOT NULL
), taken AS (
    UPDATE sessions s SET last_seq = s.last_seq + t.n
    FROM (SELECT session_id, count(*) AS n FROM numbered GROUP BY session_id) AS t
    WHERE s.id = t.session_id
    RETURNING s.id, s.last_seq - t.n AS before
), event AS (
    INSERT INTO events (execution_id, n, session_id, seq, type, data, created_at)
    SELECT c.id, 0, taken.id, taken.before + numbered.k, :type, CAST(c.data AS json), c.created_at
    FROM checked c JOIN execution e ON e.id = c.id
    LEFT JOIN numbered ON numbered.id = c.id
    LEFT JOIN taken ON taken.id = c.session_id
    RETURNING execution_id, seq
)
SELECT c.ord, e.execution_id IS NOT NULL AS inserted, c.session_found, e.seq
FROM checked c LEFT JOIN event e ON e.execution_id = c.id
ORDER BY c.ord
""")
