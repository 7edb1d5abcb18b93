"""Accepting an execution: its row and its ``execution.accepted`` event, atomically.

The event takes the session's next seq. Nothing is written when the
execution id exists already (an idempotent resubmission) or the session is
not the tenant's.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import orjson
import sqlalchemy as sa

from intentd.store.db import Store, dialect_insert
from intentd.store.events import NewEvent, event_row, insert_first, wire
from intentd.store.schema import executions, sessions

ACCEPTED = "execution.accepted"


class Duplicate(Exception):
    """The execution id exists already."""


class UnknownSession(Exception):
    """No such session in this tenant."""


async def accept(store: Store, values: dict[str, Any]) -> dict[str, Any]:
    """Insert the execution row ``values`` and its first event; returns the event as clients see it."""
    if store.dialect == "postgresql":
        return await _accept_in_one_statement(store, values)
    return await store.run_write(partial(_accept_in, values=values))


def _accepted(values: dict[str, Any]) -> NewEvent:
    return NewEvent(ACCEPTED, {"intent": values["intent"], "params": values["params"]},
                    session_id=values["session_id"], execution_id=values["id"], n=0,
                    created_at=values["created_at"])


def _accept_in(conn: sa.Connection, values: dict[str, Any]) -> dict[str, Any]:
    seq = None
    if values["session_id"] is not None:
        seq = conn.execute(_NEXT_SEQ, {"sid": values["session_id"], "tid": values["tenant_id"]}).scalar_one_or_none()
        if seq is None:
            raise UnknownSession
    if conn.execute(_INSERT_EXECUTION, values).scalar_one_or_none() is None:
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
    async with store.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        outcome = (await conn.execute(_ACCEPT_POSTGRESQL, params)).one()
    if not outcome.inserted:
        if values["session_id"] is not None and not outcome.session_found:
            raise UnknownSession
        raise Duplicate
    # A session deleted between the statement's check and its update keeps no seq.
    return wire(event_row(event, outcome.seq))


# The session's next seq, if the session belongs to the tenant.
_NEXT_SEQ = (
    sa.update(sessions)
    .where(sessions.c.id == sa.bindparam("sid"), sessions.c.tenant_id == sa.bindparam("tid"))
    .values(last_seq=sessions.c.last_seq + 1)
    .returning(sessions.c.last_seq)
)
_INSERT_EXECUTION = dialect_insert("sqlite", executions).on_conflict_do_nothing().returning(executions.c.id)
_ACCEPT_POSTGRESQL = sa.text("""
WITH own_session AS (
    SELECT 1 FROM sessions WHERE id = CAST(:session_id AS varchar) AND tenant_id = :tenant_id
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
