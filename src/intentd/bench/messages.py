"""Scenario `messages`: agent-protocol ping/pong round trips over C connections vs a bare echo app.

Both servers run on ``intentd.server.uvicorn_config`` and are driven by the
same load generator; each is measured while the other is stopped, so they
never compete for the two cores.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intentd.bench import servers
from intentd.bench.procs import LoadGen, idle_cpu_util, workdir
from intentd.bench.report import Result

TARGET_RATIO = 0.5
SOCKETS_PER_SESSION = 100


@dataclass(frozen=True)
class MessagesConfig:
    connections: tuple[int, ...] = (100, 1_000)
    duration: float = 10.0
    warmup: float = 2.0
    idle_sample: float = 2.0  # seconds of the idle server's CPU, subtracted from the measured CPU

    @classmethod
    def quick(cls) -> MessagesConfig:
        return cls(connections=(100,), duration=3.0, warmup=1.0)


def measure(server: servers.Server, connections: int, config: MessagesConfig, tmp: Path, *, echo: bool,
            name: str, tokens: list[str] | None = None, interval: float = 0.0) -> dict[str, Any]:
    job = {"kind": "pingpong", "url": server.agent_url if not echo else server.base_url.replace("http", "ws") + "/",
           "connections": connections, "duration": config.duration, "warmup": config.warmup, "echo": echo,
           "tokens": tokens, "interval": interval}
    with LoadGen(job, log_dir=tmp, name=name) as gen:
        gen.read(timeout=300)  # connected
        idle = idle_cpu_util(server, config.idle_sample) if config.idle_sample > 0 else 0.0
        cpu_before, started = server.cpu_seconds(), time.monotonic()
        gen.proceed()
        measured = gen.read(timeout=config.duration + config.warmup + 120)
        # The server's CPU time over every round trip (warm-up included), handshakes and the
        # background work it does anyway (DBOS queue polling) excluded.
        cpu = max(server.cpu_seconds() - cpu_before - idle * (time.monotonic() - started), 0.0)
    measured["server_idle_cpu_util"] = round(idle, 3)
    measured["server_cpu_us_per_round_trip"] = round(cpu * 1e6 / measured["all_round_trips"], 1) \
        if measured["all_round_trips"] else None
    return measured


def row(case: str, measured: dict[str, Any]) -> dict[str, Any]:
    return {
        "case": case,
        "connections": measured["connections"],
        "round trips /s": measured["per_second"],
        "p50 ms": measured["rtt"]["p50_ms"],
        "p99 ms": measured["rtt"]["p99_ms"],
        "max ms": measured["rtt"]["max_ms"],
        "failures": measured["failures"],
        "server CPU us/round trip": measured.get("server_cpu_us_per_round_trip"),
    }


def run(config: MessagesConfig) -> Result:
    result = Result("messages", {"connections": list(config.connections), "duration": config.duration,
                                 "warmup": config.warmup})
    baseline: dict[int, dict[str, Any]] = {}
    ours: dict[int, dict[str, Any]] = {}
    with workdir("messages") as tmp:
        with servers.echo_app(tmp) as echo:
            for count in config.connections:
                baseline[count] = measure(echo, count, config, tmp, echo=True, name=f"echo-{count}")
        with servers.embedded(tmp) as server:
            tokens = server.session_tokens(math.ceil(max(config.connections) / SOCKETS_PER_SESSION))
            for count in config.connections:
                ours[count] = measure(server, count, config, tmp, echo=False, name=f"intentd-{count}", tokens=tokens)
    for count in config.connections:
        ratio = ours[count]["per_second"] / baseline[count]["per_second"] if baseline[count]["per_second"] else None
        result.rows.append({**row("echo baseline (bare ASGI)", baseline[count]), "ratio": None})
        cpu_ratio = _cpu_ratio(baseline[count], ours[count])
        result.rows.append({**row("intentd ping/pong", ours[count]),
                            "ratio": None if ratio is None else round(ratio, 3), "CPU-cost ratio": cpu_ratio})
        if count == 100:
            result.target("agent-protocol throughput vs echo at 100 connections", f">= {TARGET_RATIO:.0%}",
                          ratio, ratio is not None and ratio >= TARGET_RATIO)
            result.target("same, from server CPU per round trip (echo / intentd)", f">= {TARGET_RATIO:.0%}",
                          cpu_ratio, cpu_ratio is not None and cpu_ratio >= TARGET_RATIO)
    result.checks = {
        "failures": sum(m["failures"] for m in (*baseline.values(), *ours.values())),
        "all_connected": all(m["connections"] == c for c, m in (*baseline.items(), *ours.items())),
    }
    return result


def _cpu_ratio(baseline: dict[str, Any], ours: dict[str, Any]) -> float | None:
    """Echo's CPU per round trip over ours: the throughput ratio on a machine with a free core each."""
    base, mine = baseline.get("server_cpu_us_per_round_trip"), ours.get("server_cpu_us_per_round_trip")
    return round(base / mine, 3) if base and mine else None
