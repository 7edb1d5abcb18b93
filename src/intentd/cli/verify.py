"""`intentd verify BASE_URL`: check a running deployment through its gateway."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from enum import Enum
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from intentd.gateway.verify import StepResult, VerifyOptions, all_passed, run_verify

_STYLES = {"pass": "green", "FAIL": "bold red", "skip": "yellow"}


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


def verify(
    base_url: Annotated[str, typer.Argument(help="The gateway's public URL, e.g. http://localhost.")],
    traefik_api: Annotated[
        str | None, typer.Option(help="Traefik's API, e.g. http://127.0.0.1:8080 (step 1).")
    ] = None,
    experience: Annotated[
        str | None, typer.Option(help="An experience replica's own URL, to upgrade directly (step 2).")
    ] = None,
    origin: Annotated[
        str | None, typer.Option(help="An allowed Origin (default: BASE_URL's origin).")
    ] = None,
    idle: Annotated[float, typer.Option(help="Seconds an idle socket must survive (0 skips step 5).")] = 75.0,
    session_token: Annotated[
        str | None, typer.Option(envvar="INTENTD_VERIFY_SESSION_TOKEN", help="A valid session token.")
    ] = None,
    email: Annotated[str | None, typer.Option(help="Log in and create a session (with --password).")] = None,
    password: Annotated[
        str | None, typer.Option(envvar="INTENTD_VERIFY_PASSWORD", help="Password for --email.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each answer.")] = 10.0,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table, or json for scripts.")
    ] = OutputFormat.table,
) -> None:
    """Run the gateway checks (routers, upgrade, tokens, origins, idle socket, owners); exit 0 when all pass."""
    console = Console(width=160)
    if email and not password:
        password = typer.prompt(f"password for {email}", hide_input=True)
    options = VerifyOptions(
        base_url=base_url,
        traefik_api=traefik_api,
        experience_url=experience,
        origin=origin,
        idle=idle,
        session_token=session_token,
        email=email,
        password=password,
        timeout=timeout,
        progress=lambda step: console.print(f"[dim]checking {step}...[/dim]", highlight=False),
    )
    if output is OutputFormat.json:
        options.progress = lambda _step: None
    results = asyncio.run(run_verify(options))
    if output is OutputFormat.json:
        payload = {
            "ok": all_passed(results),
            "results": [dataclasses.asdict(r) | {"status": r.status} for r in results],
        }
        typer.echo(json.dumps(payload, indent=2))
        raise typer.Exit(0 if all_passed(results) else 1)
    console.print(results_table(base_url, results))
    failed = sum(1 for r in results if r.ok is False)
    skipped = sum(1 for r in results if r.ok is None)
    summary = f"{len(results) - failed - skipped} passed, {failed} failed, {skipped} skipped"
    console.print(f"[{'green' if not failed else 'bold red'}]{summary}[/]")
    raise typer.Exit(0 if all_passed(results) else 1)


def results_table(base_url: str, results: list[StepResult]) -> Table:
    table = Table(title=f"intentd verify {base_url}", show_lines=True)
    table.add_column("step", justify="right")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail / diagnosis", overflow="fold")
    for result in results:
        text = escape(result.detail)
        if result.diagnosis:
            text += f"\n[red]diagnosis:[/red] {escape(result.diagnosis)}"
        style = _STYLES[result.status]
        table.add_row(result.step, escape(result.name), f"[{style}]{result.status}[/]", text)
    return table


def register(main_app: typer.Typer) -> None:
    main_app.command()(verify)
