"""Options every command that touches local state shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from intentd.config import ConfigError, Settings, load_settings

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="INTENTD_DATA_DIR", help="Where local state lives (default ./.intentd)."),
]


def settings_or_exit(data_dir: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(data_dir=data_dir, **overrides)
    except ConfigError as exc:
        typer.secho(f"configuration error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
