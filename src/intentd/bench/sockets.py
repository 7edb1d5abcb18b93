"""Scenario `sockets`: hold N authenticated agent sockets on one `intentd up` process."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intentd.bench import servers
from intentd.bench.procs import LoadGen, idle_cpu_util, workdir
from intentd.bench.report import Result

TARGET_SOCKETS = 10_000
TARGET_KB_PER_SOCKET = 40.0
TARGET_CONNECT_RATE = 500.0


@dataclass(frozen=True)
class SocketsConfig:
    count: int = TARGET_SOCKETS
    sockets_per_session: int = 100
    connect_concurrency: int = 200  # handshakes in flight at once

    @classmethod
    def quick(cls) -> SocketsConfig:
        return cls(count=1_000)


IDLE_SAMPLE_S = 3.0


def hold(server: servers.Server, config: SocketsConfig, tmp: Path, *, tokens: list[str] | None,
         name: str) -> dict[str, Any]:
    """Connect ``config.count`` sockets, measure the server while they are held, ping each."""
    assert server.front is not None
    time.sleep(1.0)  # let start-up work (migrations, admin bootstrap) settle before the baseline RSS
    rss_before = server.front.rss_kb()
    # Background work (DBOS queue polling) costs CPU whether sockets connect or not: measured
    # apart, so the per-connect figure is the connect's own cost.
    idle_util = idle_cpu_util(server, IDLE_SAMPLE_S)
    cpu_before = server.cpu_seconds()
    job = {"kind": "hold", "url": server.agent_url if tokens else server.base_url.replace("http", "ws") + "/",
           "tokens": tokens, "count": config.count, "connect_concurrency": config.connect_concurrency,
           "echo": tokens is None}
    with LoadGen(job, log_dir=tmp, name=name) as gen:
        connected = gen.read(timeout=600)
        connect_cpu = server.cpu_seconds() - cpu_before - idle_util * connected["seconds"]
        time.sleep(2.0)  # buffers and tasks of the last connections settle
        server.check_alive()
        rss_after = server.front.rss_kb()
        gen.proceed()
        pinged = gen.read(timeout=300)
    opened = connected["connected"]
    return {
        "connected": connected, "pinged": pinged, "rss_before": rss_before, "rss_after": rss_after,
        "kb_per_socket": (rss_after - rss_before) / opened if opened else None,
        "cpu_ms_per_connect": max(connect_cpu, 0.0) * 1000 / opened if opened else None,
        "idle_cpu_util": round(idle_util, 3),
    }


def _row(case: str, held: dict[str, Any]) -> dict[str, Any]:
    connected, pinged = held["connected"], held["pinged"]
    cpu = held["cpu_ms_per_connect"]
    return {
        "case": case,
        "connected": connected["connected"],
        "failed": connected["failed"],
        "connect+auth /s": connected["rate_per_s"],
        "connect p50 ms": connected["connect_latency"]["p50_ms"],
        "connect p99 ms": connected["connect_latency"]["p99_ms"],
        # Load-independent: what one connect costs the server (idle background subtracted),
        # and the rate one free core would sustain at that cost.
        "server CPU ms/connect": None if cpu is None else round(cpu, 3),
        "connects per CPU-second": round(1000 / cpu, 1) if cpu else None,
        "idle CPU (cores)": held["idle_cpu_util"],
        "RSS before MB": round(held["rss_before"] / 1024, 1),
        "RSS after MB": round(held["rss_after"] / 1024, 1),
        "KB/socket": None if held["kb_per_socket"] is None else round(held["kb_per_socket"], 1),
        "answered ping": pinged["answered"],
        "ping p99 ms": pinged["rtt"]["p99_ms"],
    }


def run(config: SocketsConfig) -> Result:
    result = Result("sockets", {"count": config.count, "sockets_per_session": config.sockets_per_session,
                                "connect_concurrency": config.connect_concurrency})
    with workdir("sockets") as tmp:
        with servers.echo_app(tmp) as echo:
            baseline = hold(echo, config, tmp, tokens=None, name="echo")
        with servers.embedded(tmp) as server:
            tokens = server.session_tokens(math.ceil(config.count / config.sockets_per_session))
            ours = hold(server, config, tmp, tokens=tokens, name="intentd")
    result.rows.append(_row("echo baseline (no auth)", baseline))
    result.rows.append(_row("intentd up (authenticated)", ours))
    connected, pinged = ours["connected"], ours["pinged"]
    opened = connected["connected"]
    kb_per_socket = ours["kb_per_socket"]
    result.checks = {
        "all_connected": opened == config.count and baseline["connected"]["connected"] == config.count,
        "all_answered_ping": pinged["answered"] == opened == config.count,
        "connect_errors": connected["errors"] + baseline["connected"]["errors"],
        "ping_errors": pinged["errors"],
    }
    full_size = config.count >= TARGET_SOCKETS
    result.target("concurrent authenticated sockets", f">= {TARGET_SOCKETS:,}", opened,
                  opened >= TARGET_SOCKETS if full_size else None)
    result.target("server RSS per socket (KB)", f"<= {TARGET_KB_PER_SOCKET:g}", kb_per_socket,
                  None if kb_per_socket is None else kb_per_socket <= TARGET_KB_PER_SOCKET)
    result.target("connect+auth per second", f">= {TARGET_CONNECT_RATE:g}", connected["rate_per_s"],
                  connected["rate_per_s"] is not None and connected["rate_per_s"] >= TARGET_CONNECT_RATE)
    cpu = ours["cpu_ms_per_connect"]
    result.target("connect+auth per CPU-second (one free core)", f">= {TARGET_CONNECT_RATE:g}",
                  1000 / cpu if cpu else None, bool(cpu) and 1000 / cpu >= TARGET_CONNECT_RATE)
    if not full_size:
        result.notes.append(f"sized below the target ({config.count:,} < {TARGET_SOCKETS:,}): the count target "
                            "is only judged in a full-size run")
    return result
