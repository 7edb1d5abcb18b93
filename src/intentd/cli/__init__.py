"""The `intentd` command line."""

from __future__ import annotations

import typer

from intentd.cli import bench, chat, routes, serve, user, verify

app = typer.Typer(
    name="intentd",
    help="Self-hostable platform for intent-driven agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
serve.register(app)
routes.register(app)
verify.register(app)
app.add_typer(user.app, name="user")
app.command("chat")(chat.chat)
app.add_typer(bench.app, name="bench")


def main() -> None:
    app()
