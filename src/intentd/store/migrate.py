"""Schema migrations (Alembic), run by `intentd db upgrade` or at start-up."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

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
