"""Scenario `gateway`: the rendered nginx config in front of `intentd up` vs direct.

The same `intentd up` process is measured directly and through nginx
(``intentd.gateway.render.render_nginx``, foreground, free port), in
interleaved rounds: ping/pong at light load (each socket sends one ping per
interval, the sockets spread over it, so the difference is the proxy hop, not
queueing) and the fan-out scenario.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from intentd.bench import fanout, messages, servers
from intentd.bench.procs import workdir
from intentd.bench.report import Result, median

TARGET_ADDED_P50_MS = 1.0


@dataclass(frozen=True)
class GatewayConfig:
    ping_connections: int = 100
    ping_interval: float = 0.05  # 20 round trips per second per socket: light load
    duration: float = 10.0
    rounds: int = 3  # ping/pong rounds per path, interleaved
    fanout: fanout.FanoutConfig = field(default_factory=fanout.FanoutConfig)
    fanout_rounds: int = 2

    @classmethod
    def quick(cls) -> GatewayConfig:
        return cls(ping_connections=20, duration=3.0, rounds=2, fanout=fanout.FanoutConfig.quick(), fanout_rounds=1)


def _summary(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    """Median over the rounds of each round's p50/p99/max (ms)."""
    return {key: median([run[key] for run in runs]) for key in ("p50_ms", "p99_ms", "max_ms")}


def _added(direct: dict[str, float | None], proxied: dict[str, float | None]) -> dict[str, float | None]:
    def diff(key: str) -> float | None:
        if direct.get(key) is None or proxied.get(key) is None:
            return None
        return round(proxied[key] - direct[key], 3)  # type: ignore[operator]

    return {"added p50 ms": diff("p50_ms"), "added p99 ms": diff("p99_ms")}


def run(config: GatewayConfig) -> Result:
    result = Result("gateway", {"ping_connections": config.ping_connections, "ping_interval": config.ping_interval,
                                "duration": config.duration, "rounds": config.rounds,
                                "fanout_sockets": config.fanout.sockets, "fanout_rate": config.fanout.rate,
                                "fanout_rounds": config.fanout_rounds})
    # Latency is compared here, not CPU: no idle sample.
    msg_config = messages.MessagesConfig(connections=(config.ping_connections,), duration=config.duration,
                                         warmup=1.0, idle_sample=0.0)
    ping: dict[str, list[dict[str, Any]]] = {"direct": [], "nginx": []}
    fan: dict[str, list[dict[str, Any]]] = {"direct": [], "nginx": []}
    with workdir("gateway") as tmp, servers.embedded(tmp) as server, servers.nginx_in_front(tmp, server) as proxy:
        tokens = server.session_tokens(math.ceil(config.ping_connections / messages.SOCKETS_PER_SESSION))
        targets = (("direct", server), ("nginx", proxy))
        # Interleaved rounds, medians reported: the machine's load drifts, and whichever path
        # went first would otherwise carry the drift as "proxy overhead".
        for round_ in range(config.rounds):
            for path, target in targets if round_ % 2 == 0 else reversed(targets):
                ping[path].append(messages.measure(target, config.ping_connections, msg_config, tmp, echo=False,
                                                   name=f"ping-{path}-{round_}", tokens=tokens,
                                                   interval=config.ping_interval))
        for round_ in range(config.fanout_rounds):
            for path, target in targets if round_ % 2 == 0 else reversed(targets):
                fan[path].append(fanout.measure(target, config.fanout, tmp, name=f"fanout-{path}-{round_}"))
    ping_latency = {path: _summary([r["rtt"] for r in runs]) for path, runs in ping.items()}
    fan_latency = {path: _summary([r["latency"] for r in runs]) for path, runs in fan.items()}
    ping_added = _added(ping_latency["direct"], ping_latency["nginx"])
    fan_added = _added(fan_latency["direct"], fan_latency["nginx"])
    for path in ("direct", "nginx"):
        result.rows.append({
            "case": f"ping/pong, {path}", "path": path, "rounds": len(ping[path]),
            "connections": ping[path][0]["connections"],
            "round trips /s": median([r["per_second"] for r in ping[path]]),
            "p50 ms": ping_latency[path]["p50_ms"], "p99 ms": ping_latency[path]["p99_ms"],
            "max ms": ping_latency[path]["max_ms"], **(ping_added if path == "nginx" else {}),
        })
    for path in ("direct", "nginx"):
        result.rows.append({
            "case": f"fan-out, {path}", "path": path, "rounds": len(fan[path]),
            "connections": fan[path][0]["sockets"],
            "delivered /s": median([r["delivered_per_s"] for r in fan[path]]),
            "p50 ms": fan_latency[path]["p50_ms"], "p99 ms": fan_latency[path]["p99_ms"],
            "max ms": fan_latency[path]["max_ms"],
            "gaps": sum(r["gaps"] for r in fan[path]), "duplicates": sum(r["duplicates"] for r in fan[path]),
            "machine cores busy": median([r["machine_busy_cores"] for r in fan[path]]),
            **(fan_added if path == "nginx" else {}),
        })
    every_fanout = [r for runs in fan.values() for r in runs]
    result.checks = {
        "ping_failures": sum(r["failures"] for runs in ping.values() for r in runs),
        "fanout_gaps": sum(r["gaps"] for r in every_fanout),
        "fanout_duplicates": sum(r["duplicates"] for r in every_fanout),
        "fanout_unfinished_sockets": sum(r["unfinished_sockets"] for r in every_fanout),
    }
    for label, added in (("ping/pong", ping_added), ("fan-out", fan_added)):
        value = added["added p50 ms"]
        result.target(f"nginx added p50 latency, {label} (ms)", f"<= {TARGET_ADDED_P50_MS:g}", value,
                      value is not None and value <= TARGET_ADDED_P50_MS)
    return result
