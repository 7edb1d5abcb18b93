"""`intentd up`, `intentd serve experience|runtime`, `intentd db upgrade`."""

from __future__ import annotations

import asyncio
from enum import Enum
from typing import Annotated

import typer

from intentd.cli.options import DataDir, settings_or_exit
from intentd.config import ConfigError, Settings
from intentd.gateway.contract import DEFAULT_PORTS
from intentd.logs import configure_logging

Host = Annotated[str, typer.Option(help="Interface to listen on.")]


class Plane(str, Enum):
    experience = "experience"
    runtime = "runtime"


def _prepare(settings: Settings) -> None:
    configure_logging(settings.log_level, json=settings.log_json)
    try:
        settings.require_safe_secrets()
    except ConfigError as exc:
        typer.secho(f"refusing to start: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


def up(
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for both planes.")] = 8000,
    data_dir: DataDir = None,
) -> None:
    """Run everything in one process: both planes, SQLite, in-process events (embedded mode)."""
    settings = settings_or_exit(data_dir)
    _prepare(settings)
    from intentd.embedded import serve_embedded

    serve_embedded(settings, host, port)


def serve(
    plane: Annotated[Plane, typer.Argument(help="Which plane this process runs.")],
    host: Host = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Default 8001 (experience) or 8000 (runtime).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Run one plane (distributed mode: PostgreSQL via INTENTD_DATABASE_URL, Redis via INTENTD_REDIS_URL)."""
    settings = settings_or_exit(data_dir)
    _prepare(settings)
    port = port or DEFAULT_PORTS[plane.value]
    if plane is Plane.runtime:
        from intentd.runtime.app import serve_runtime

        serve_runtime(settings, host, port)
    else:
        from intentd.experience.app import serve_experience

        serve_experience(settings, host, port)


db_app = typer.Typer(help="The application database.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None) -> None:
    """Apply the schema migrations (Alembic) to the configured database."""
    settings = settings_or_exit(data_dir)
    from intentd.store.migrate import upgrade_async

    asyncio.run(upgrade_async(settings.app_database_url))
    typer.echo("database schema is up to date")


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(serve)
    app.add_typer(db_app, name="db")
