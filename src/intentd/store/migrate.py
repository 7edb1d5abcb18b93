"""Schema migrations (Alembic), run by `intentd db upgrade` or at start-up."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

_HERE = Path(__file__).parent / "migrations"


def sync_url(async_url: str) -> str:
    """Alembic runs synchronously: swap the async driver for its sync twin."""
    return async_url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg")


def alembic_config(async_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.set_main_option("sqlalchemy.url", sync_url(async_url).replace("%", "%%"))
    return config


def upgrade(async_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(async_url), revision)


async def upgrade_async(async_url: str) -> None:
    await asyncio.to_thread(upgrade, async_url)


class SchemaOutOfDate(Exception):
    """The database is not at the schema this code needs."""


def require_current(async_url: str) -> None:
    """Refuse to run against a database that `intentd db upgrade` has not brought up to date."""
    config = alembic_config(async_url)
    head = ScriptDirectory.from_config(config).get_current_head()
    engine = create_engine(sync_url(async_url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    if current != head:
        raise SchemaOutOfDate(
            f"the database schema is at {current or 'nothing'}, this intentd needs {head}: "
            "run `intentd db upgrade` (or start with INTENTD_AUTO_MIGRATE=true)"
        )


async def prepare_schema(async_url: str, *, auto_migrate: bool) -> None:
    """At start-up: migrate, or check that someone did."""
    await asyncio.to_thread(upgrade if auto_migrate else require_current, async_url)
