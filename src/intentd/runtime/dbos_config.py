"""How intentd configures DBOS for its work, beyond naming and the database URL.

The engine and the bench's tuned baseline (``intentd.bench.dbos_baseline``)
both use it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from intentd.config import Settings
from intentd.store.db import ping_when_idle, sqlite_synchronous

# DBOS's threads for its database calls (its default: as many as calls wait).
DBOS_THREADS = 8


def dbos_tuning(settings: Settings) -> dict[str, Any]:
    """The DBOS configuration keys intentd sets for its work."""
    return {
        "sys_db_pool_size": settings.dbos_pool_size,
        # DBOS pings every connection it takes from its pool: a round trip
        # before each of an execution's two transactions. Only those idle for
        # a while are pinged (``tune_dbos_database``).
        "db_engine_kwargs": {"pool_pre_ping": False},
        # DBOS starts a thread for each database call that finds none idle:
        # ~70 at 64 running executions. They fought over the GIL (and on
        # SQLite over its one writer's lock) more than they worked: 8 did
        # more executions per second on both databases (docs/performance.md,
        # items 32 and 35). Steps that block have threads of their own
        # (``Engine.run_blocking``).
        "max_executor_threads": DBOS_THREADS,
    }


def tune_dbos_database(engine: sa.Engine, settings: Settings) -> None:
    """Once DBOS is launched, what its configuration cannot say."""
    if settings.is_postgres:
        ping_when_idle(engine)
    else:
        # The durability of intentd's own SQLite file. DBOS leaves SQLite's
        # default, an fsync per commit, which held its write lock for most of
        # an execution's time (docs/performance.md).
        sqlite_synchronous(engine, settings.sqlite_synchronous)


def sqlite_wal(url: str) -> None:
    """DBOS creates its SQLite file in rollback-journal mode; WAL is persistent once set."""
    path = Path(url.split(":///", 1)[1])
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
