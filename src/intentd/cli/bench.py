"""`intentd bench`: measure intentd against its targets and its baselines (issue 7, docs/performance.md)."""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

# The scenarios are imported in their commands: the rest of `intentd` starts without them.
if TYPE_CHECKING:
    from intentd.bench.report import Result

app = typer.Typer(
    help="Benchmarks: each scenario starts its own server process(es) and a separate load generator.",
    no_args_is_help=True,
)

Quick = Annotated[bool, typer.Option("--quick", help="A small size that finishes in under a minute.")]
JsonFile = Annotated[Path | None, typer.Option("--json", help="Also write the results to this JSON file.")]


_STOPPED_BY_SIGTERM = 128 + signal.SIGTERM
_sigterm_received = False


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    global _sigterm_received
    _sigterm_received = True
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the clean-up short
    raise SystemExit(_STOPPED_BY_SIGTERM)


def _run(scenarios: list[Callable[[], Result]], json_file: Path | None) -> None:
    from intentd.bench.procs import BenchError, raise_fd_limit
    from intentd.bench.report import print_result, write_json

    raise_fd_limit()
    # Stopped with SIGTERM, unwind like Ctrl-C: the scenarios stop their
    # servers and drop their databases on the way out.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    results = []
    try:
        for scenario in scenarios:
            result = scenario()
            print_result(result)
            results.append(result)
            if _sigterm_received:
                break
    except BenchError as exc:
        typer.secho(f"bench failed: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    finally:
        if json_file is not None and results:
            write_json(json_file, results)
            typer.echo(f"results written to {json_file}")
    if _sigterm_received:
        # The handler's exception was lost (a signal handler runs wherever the
        # main thread is, a finalizer included, whose exceptions Python drops):
        # the scenario then ran to its end, and the bench still exits as stopped.
        raise SystemExit(_STOPPED_BY_SIGTERM)


@app.command("sockets")
def sockets_command(
    quick: Quick = False,
    json_file: JsonFile = None,
    count: Annotated[int | None, typer.Option(help="Sockets to hold (default 10,000; quick 1,000).")] = None,
) -> None:
    """Hold N authenticated agent sockets on one `intentd up`: connect rate, RSS per socket, ping."""
    from intentd.bench import sockets
    config = sockets.SocketsConfig.quick() if quick else sockets.SocketsConfig()
    if count is not None:
        config = dataclasses.replace(config, count=count)
    _run([lambda: sockets.run(config)], json_file)


@app.command("fanout")
def fanout_command(
    quick: Quick = False,
    json_file: JsonFile = None,
    sockets_count: Annotated[int | None, typer.Option("--sockets", help="Receiving sockets (default 1,000).")] = None,
    rate: Annotated[float | None, typer.Option(help="Deliveries per second, all sockets (default 5,000).")] = None,
    sockets_per_session: Annotated[int | None, typer.Option(help="Sockets sharing one session (default 20).")] = None,
    duration: Annotated[float | None, typer.Option(help="Seconds of streaming (default 10).")] = None,
) -> None:
    """S sockets receiving execution events at a target rate: latency p50/p99/max, gaps, duplicates."""
    from intentd.bench import fanout
    config = fanout.FanoutConfig.quick() if quick else fanout.FanoutConfig()
    overrides = {"sockets": sockets_count, "rate": rate, "sockets_per_session": sockets_per_session,
                 "duration": duration}
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    _run([lambda: fanout.run(config)], json_file)


@app.command("messages")
def messages_command(
    quick: Quick = False,
    json_file: JsonFile = None,
    connections: Annotated[list[int] | None, typer.Option(help="Connection counts (default 100 and 1,000).")] = None,
    duration: Annotated[float | None, typer.Option(help="Seconds measured per round (default 5).")] = None,
    rounds: Annotated[int | None, typer.Option(
        min=1, help="Rounds per server and connection count, interleaved (default 3).")] = None,
) -> None:
    """Ping/pong round trips vs a bare ASGI echo app on the same server stack."""
    from intentd.bench import messages
    config = messages.MessagesConfig.quick() if quick else messages.MessagesConfig()
    overrides = {"connections": tuple(connections) if connections else None, "duration": duration, "rounds": rounds}
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    _run([lambda: messages.run(config)], json_file)


@app.command("intents")
def intents_command(
    quick: Quick = False,
    json_file: JsonFile = None,
    postgres: Annotated[bool | None, typer.Option(
        help="Also PostgreSQL with 1 and 2 runtime replicas (default: yes; quick: no).")] = None,
    duration: Annotated[float | None, typer.Option(help="Seconds measured per run (default 15).")] = None,
) -> None:
    """No-op intent throughput and latency vs bare DBOS no-op workflows, SQLite and PostgreSQL."""
    from intentd.bench import intents
    config = intents.IntentsConfig.quick() if quick else intents.IntentsConfig()
    if postgres is not None:
        config = dataclasses.replace(config, postgres=postgres)
    if duration is not None:
        config = dataclasses.replace(config, duration=duration)
    _run([lambda: intents.run(config)], json_file)


@app.command("gateway")
def gateway_command(quick: Quick = False, json_file: JsonFile = None) -> None:
    """Ping/pong and fan-out through the rendered nginx config vs direct: added latency."""
    from intentd.bench import gateway
    config = gateway.GatewayConfig.quick() if quick else gateway.GatewayConfig()
    _run([lambda: gateway.run(config)], json_file)


@app.command("startup")
def startup_command(
    quick: Quick = False,
    json_file: JsonFile = None,
    restarts: Annotated[int | None, typer.Option(help="Restarts of the same data dir (default 5; quick 2).")] = None,
) -> None:
    """How soon `intentd up` is ready: first start and restarts (target: under 5 s)."""
    from intentd.bench import startup
    config = startup.StartupConfig.quick() if quick else startup.StartupConfig()
    if restarts is not None:
        config = dataclasses.replace(config, restarts=restarts)
    _run([lambda: startup.run(config)], json_file)


@app.command("all")
def all_command(
    quick: Quick = False,
    json_file: JsonFile = None,
    postgres: Annotated[bool | None, typer.Option(help="Include the PostgreSQL intents runs.")] = None,
) -> None:
    """Every scenario, one after the other, into one JSON file."""
    from intentd.bench import fanout, gateway, intents, messages, sockets, startup

    intents_config = intents.IntentsConfig.quick() if quick else intents.IntentsConfig()
    if postgres is not None:
        intents_config = dataclasses.replace(intents_config, postgres=postgres)
    _run([
        lambda: sockets.run(sockets.SocketsConfig.quick() if quick else sockets.SocketsConfig()),
        lambda: fanout.run(fanout.FanoutConfig.quick() if quick else fanout.FanoutConfig()),
        lambda: messages.run(messages.MessagesConfig.quick() if quick else messages.MessagesConfig()),
        lambda: intents.run(intents_config),
        lambda: gateway.run(gateway.GatewayConfig.quick() if quick else gateway.GatewayConfig()),
        lambda: startup.run(startup.StartupConfig.quick() if quick else startup.StartupConfig()),
    ], json_file)
