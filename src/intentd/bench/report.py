"""Bench results: statistics, the rich table and the JSON file."""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: Sequence[float | None]) -> float | None:
    """The median of the values present (None when there are none)."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def latency_ms(samples_s: Sequence[float]) -> dict[str, float | None]:
    """p50/p99/max of latencies given in seconds, in milliseconds."""
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    return {
        "p50_ms": ms(percentile(samples_s, 0.50)),
        "p99_ms": ms(percentile(samples_s, 0.99)),
        "max_ms": ms(max(samples_s) if samples_s else None),
    }


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "load_average": load_average(),
    }


def load_average() -> list[float]:
    """Other work on the machine skews every figure: each result records the load it ran under."""
    return [round(x, 2) for x in os.getloadavg()]


@dataclass
class Target:
    """One target of issue 7: what was asked, what was measured, whether it was met."""

    name: str
    goal: str
    value: float | None
    met: bool | None  # None: not measured in this run


@dataclass
class Result:
    scenario: str
    params: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)  # interleaved scenarios: each round, in order run
    load_average_at_start: list[float] = field(default_factory=load_average)

    def target(self, name: str, goal: str, value: float | None, ok: bool | None) -> None:
        self.targets.append(Target(name, goal, None if value is None else round(value, 3), ok))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_result(result: Result, console: Console | None = None) -> None:
    # Piped output keeps the full table rather than wrapping it at 80 columns.
    console = console or Console(width=None if sys.stdout.isatty() else 200)
    columns: list[str] = []
    for row in result.rows:
        columns += [key for key in row if key not in columns]
    table = Table(title=f"intentd bench {result.scenario}", title_justify="left")
    for column in columns:
        table.add_column(column, justify="left" if column in ("case", "server", "path") else "right")
    for row in result.rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    console.print(table)
    if result.checks:
        console.print("checks: " + ", ".join(f"{k}={_cell(v)}" for k, v in result.checks.items()))
    if result.targets:
        targets = Table(title="targets", title_justify="left")
        for column in ("target", "goal", "measured", "met"):
            targets.add_column(column)
        for t in result.targets:
            met = "-" if t.met is None else ("[green]met[/]" if t.met else "[red]missed[/]")
            targets.add_row(t.name, t.goal, _cell(t.value), met)
        console.print(targets)
    for note in result.notes:
        console.print(f"note: {note}")


def write_json(path: Path, results: list[Result]) -> None:
    document = {"machine": machine(), "results": [r.to_json() for r in results]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
