"""The `intentd` command line."""

from __future__ import annotations

import typer

from intentd.cli import serve

app = typer.Typer(
    name="intentd",
    help="Self-hostable platform for intent-driven agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
serve.register(app)


def main() -> None:
    app()
