"""What distributed tests read of DBOS's own state."""

from __future__ import annotations

import psycopg


def executor_of(database_url: str, execution_id: str) -> str | None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT executor_id FROM dbos.workflow_status WHERE workflow_uuid = %s AND status = 'PENDING'",
            (execution_id,),
        ).fetchone()
    return row[0] if row else None
