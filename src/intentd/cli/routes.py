"""`intentd routes show|check|render`: the route contract, checked and rendered."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from intentd.cli.options import DataDir, settings_or_exit
from intentd.gateway.contract import CONTRACT, DEFAULT_PORTS, PLANES, Plane
from intentd.gateway.render import (
    COMPOSE_UPSTREAMS,
    FILENAMES,
    FORMATS,
    LOCAL_UPSTREAMS,
    Format,
    render,
)

app = typer.Typer(
    help="The route contract: show it, check it against the planes, render proxy configs.",
    no_args_is_help=True,
)


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


class RenderFormat(str, Enum):
    traefik = "traefik"
    traefik_static = "traefik-static"
    compose = "compose"
    nginx = "nginx"
    all = "all"


@app.command()
def show() -> None:
    """Print the contract: path, owner, kind, priority."""
    table = Table(title="intentd route contract")
    for column in ("path", "owner", "kind", "priority", "gateway", "note"):
        table.add_column(column)
    for route in sorted(CONTRACT, key=lambda r: (-r.priority, r.prefix, r.owner)):
        gateway = "routed" if route.public else "404 (operational)"
        if route.idle_timeout:
            gateway += f", idle {route.idle_timeout}s"
        table.add_row(route.prefix, route.owner, route.kind, str(route.priority), gateway, route.note)
    Console(width=120).print(table)


@app.command()
def check(
    output: Annotated[OutputFormat, typer.Option("--format", help="text or json.")] = OutputFormat.text,
    data_dir: DataDir = None,
) -> None:
    """Check the contract against both planes' real route tables and the rendered proxy configs.

    Exit 0 only when every check holds; otherwise one line per problem naming the path and plane.
    """
    # Imported here: they build both planes' apps (FastAPI), which no other command needs.
    from intentd.gateway.check import check_routes
    from intentd.gateway.tables import route_tables

    settings = settings_or_exit(data_dir)
    tables = route_tables(settings)
    problems = check_routes(tables)
    if output is OutputFormat.json:
        typer.echo(
            json.dumps(
                {
                    "ok": not problems,
                    "problems": [p.as_dict() for p in problems],
                    "routes": {plane: len(routes) for plane, routes in tables.items()},
                    "entries": len(CONTRACT),
                },
                indent=2,
            )
        )
    else:
        for problem in problems:
            typer.secho(f"FAIL {problem}", fg="red")
        if not problems:
            counts = ", ".join(f"{len(routes)} {plane} routes" for plane, routes in tables.items())
            typer.secho(f"ok: {len(CONTRACT)} contract entries, {counts}", fg="green")
    raise typer.Exit(1 if problems else 0)


def _upstreams(
    defaults: dict[Plane, list[str]], experience: list[str] | None, runtime: list[str] | None
) -> dict[Plane, list[str]]:
    given: dict[Plane, list[str] | None] = {"experience": experience, "runtime": runtime}
    return {plane: given[plane] or defaults[plane] for plane in PLANES}


@app.command("render")
def render_command(
    fmt: Annotated[RenderFormat, typer.Option("--format", help="What to render; `all` needs --out.")],
    out: Annotated[
        Path | None, typer.Option(help="Write under this directory (e.g. deploy) instead of stdout.")
    ] = None,
    listen: Annotated[int, typer.Option(help="Public port of the gateway.")] = 80,
    experience_upstream: Annotated[
        list[str] | None,
        typer.Option(
            help=f"host:port of an experience replica (repeatable; default :{DEFAULT_PORTS['experience']})."
        ),
    ] = None,
    runtime_upstream: Annotated[
        list[str] | None,
        typer.Option(
            help=f"host:port of a runtime replica (repeatable; default :{DEFAULT_PORTS['runtime']})."
        ),
    ] = None,
) -> None:
    """Render gateway configuration from the contract (traefik, traefik-static, compose, nginx)."""
    formats: tuple[Format, ...] = FORMATS if fmt is RenderFormat.all else (fmt.value,)  # type: ignore[assignment]
    if out is None and len(formats) > 1:
        typer.secho("--format all needs --out DIR", fg="red", err=True)
        raise typer.Exit(2)
    for one in formats:
        if one == "traefik":
            text = render(one, upstreams=_upstreams(COMPOSE_UPSTREAMS, experience_upstream, runtime_upstream))
        elif one == "nginx":
            text = render(
                one,
                listen=listen,
                upstreams=_upstreams(LOCAL_UPSTREAMS, experience_upstream, runtime_upstream),
            )
        else:
            text = render(one, listen=listen)
        if out is None:
            typer.echo(text, nl=False)
            continue
        target = out / FILENAMES[one]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        typer.echo(f"wrote {target}", err=True)


def register(main_app: typer.Typer) -> None:
    main_app.add_typer(app, name="routes")
