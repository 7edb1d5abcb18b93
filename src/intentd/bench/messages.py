"""Scenario `messages`: agent-protocol ping/pong round trips over C connections vs a bare echo app.

Both servers run on ``intentd.server.uvicorn_config``, side by side, and are
driven by the same load generator in interleaved rounds (echo, intentd,
intentd, echo, ...): this machine's speed drifts by a third within minutes,
and whichever server went second would otherwise carry the drift in the
ratio. Each round's ratio pairs two neighbouring measurements; the median
round is reported. The server not measured is idle (well under 1% of a core).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intentd.bench import servers
from intentd.bench.procs import LoadGen, idle_cpu_util, workdir
from intentd.bench.report import Result, median

TARGET_RATIO = 0.5
SOCKETS_PER_SESSION = 100


@dataclass(frozen=True)
class MessagesConfig:
    connections: tuple[int, ...] = (100, 1_000)
    duration: float = 5.0  # seconds measured per round
    rounds: int = 3  # per server and connection count, interleaved
    warmup: float = 1.0
    idle_sample: float = 1.0  # seconds of the idle server's CPU, subtracted from the measured CPU

    @classmethod
    def quick(cls) -> MessagesConfig:
        return cls(connections=(100,), duration=2.0, rounds=2, warmup=0.5)


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


def row(case: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median round of each figure."""
    return {
        "case": case,
        "connections": runs[0]["connections"],
        "rounds": len(runs),
        "round trips /s": median([r["per_second"] for r in runs]),
        "p50 ms": median([r["rtt"]["p50_ms"] for r in runs]),
        "p99 ms": median([r["rtt"]["p99_ms"] for r in runs]),
        "max ms": median([r["rtt"]["max_ms"] for r in runs]),
        "failures": sum(r["failures"] for r in runs),
        "server CPU us/round trip": median([r.get("server_cpu_us_per_round_trip") for r in runs]),
    }


def run(config: MessagesConfig) -> Result:
    result = Result("messages", {"connections": list(config.connections), "duration": config.duration,
                                 "rounds": config.rounds, "warmup": config.warmup})
    baseline: dict[int, list[dict[str, Any]]] = {count: [] for count in config.connections}
    ours: dict[int, list[dict[str, Any]]] = {count: [] for count in config.connections}
    with workdir("messages") as tmp, servers.echo_app(tmp) as echo, servers.embedded(tmp) as server:
        tokens = server.session_tokens(math.ceil(max(config.connections) / SOCKETS_PER_SESSION))
        for count in config.connections:
            for round_ in range(config.rounds):
                first_echo = round_ % 2 == 0
                for is_echo in (first_echo, not first_echo):
                    target, runs = (echo, baseline) if is_echo else (server, ours)
                    label = "echo" if is_echo else "intentd"
                    measured = measure(target, count, config, tmp, echo=is_echo, name=f"{label}-{count}-{round_}",
                                       tokens=None if is_echo else tokens)
                    runs[count].append(measured)
                    result.rounds.append({
                        "server": label, "connections": count, "round": round_,
                        "round trips /s": measured["per_second"], "p50 ms": measured["rtt"]["p50_ms"],
                        "server CPU us/round trip": measured["server_cpu_us_per_round_trip"],
                    })
    for count in config.connections:
        ratios = [_ratio(mine["per_second"], base["per_second"]) for base, mine in zip(baseline[count], ours[count])]
        cpu_ratios = [_ratio(base.get("server_cpu_us_per_round_trip"), mine.get("server_cpu_us_per_round_trip"))
                      for base, mine in zip(baseline[count], ours[count])]
        ratio, cpu_ratio = median(ratios), median(cpu_ratios)
        result.rows.append({**row("echo baseline (bare ASGI)", baseline[count]), "ratio": None})
        result.rows.append({**row("intentd ping/pong", ours[count]), "ratio": ratio, "CPU-cost ratio": cpu_ratio})
        result.notes.append(f"each round at {count} connections: ratio {_listed(ratios)}; "
                            f"CPU-cost ratio {_listed(cpu_ratios)}")
        if count == 100:
            result.target("agent-protocol throughput vs echo at 100 connections", f">= {TARGET_RATIO:.0%}",
                          ratio, ratio is not None and ratio >= TARGET_RATIO)
            result.target("same, from server CPU per round trip (echo / intentd)", f">= {TARGET_RATIO:.0%}",
                          cpu_ratio, cpu_ratio is not None and cpu_ratio >= TARGET_RATIO)
    every_run = [r for runs in (*baseline.values(), *ours.values()) for r in runs]
    result.checks = {
        "failures": sum(r["failures"] for r in every_run),
        "all_connected": all(r["connections"] == count for runs in (baseline, ours)
                             for count, rounds in runs.items() for r in rounds),
    }
    return result


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    """Ours over echo's throughput, or echo's CPU per round trip over ours (the throughput ratio
    on a machine with a free core each)."""
    return round(numerator / denominator, 3) if numerator and denominator else None


def _listed(ratios: list[float | None]) -> str:
    return ", ".join("-" if r is None else f"{r:.3f}" for r in ratios)
