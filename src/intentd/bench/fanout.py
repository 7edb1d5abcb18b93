"""Scenario `fanout`: S sockets receive the events of running executions at a target total rate.

The rate is what the clients receive in total (``rate`` deliveries per second
over ``sockets`` sockets). Sockets are grouped ``sockets_per_session`` to a
session; each session runs one ``bench.stream`` execution that emits an event
every ``sockets / rate`` seconds, which reaches every socket of the session.
So the runtime records ``rate / sockets_per_session`` events per second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from intentd.bench import servers
from intentd.bench.procs import BusyCores, LoadGen, workdir
from intentd.bench.report import Result

TARGET_P99_MS = 20.0
TARGET_SOCKETS = 1_000
TARGET_RATE = 5_000.0


@dataclass(frozen=True)
class FanoutConfig:
    sockets: int = TARGET_SOCKETS
    rate: float = TARGET_RATE  # deliveries per second, all sockets together
    sockets_per_session: int = 20  # 50 sessions: within the runtime's 64 concurrent executions
    duration: float = 10.0

    @classmethod
    def quick(cls) -> FanoutConfig:
        return cls(sockets=200, rate=1_000.0, sockets_per_session=20, duration=5.0)

    @property
    def sessions(self) -> int:
        return max(1, self.sockets // self.sockets_per_session)

    def job(self, url: str, tokens: list[str]) -> dict[str, Any]:
        interval = self.sockets / self.rate  # each socket receives rate/sockets events per second
        return {
            "kind": "fanout", "url": url,
            "sockets": [{"token": tokens[i % self.sessions], "driver": i < self.sessions} for i in range(self.sockets)],
            "events_per_session": max(1, round(self.duration / interval)), "interval": interval,
        }


def measure(server: servers.Server, config: FanoutConfig, tmp: Any, name: str = "loadgen") -> dict[str, Any]:
    """One fan-out run against ``server`` (fresh sessions each time)."""
    tokens = server.session_tokens(config.sessions)
    with LoadGen(config.job(server.agent_url, tokens), log_dir=tmp, name=name) as gen:
        gen.read(timeout=300)  # connected
        cpu_before, busy = server.cpu_seconds(), BusyCores()
        gen.proceed()
        measured = gen.read(timeout=config.duration + 180)
        cpu = server.cpu_seconds() - cpu_before
        # Every process on the machine (server, load generator, a proxy in front): whether
        # the run left a core free, which tells a lack of CPU from a slow hop.
        measured["machine_busy_cores"] = busy.average()
    measured["server_cpu_util"] = round(cpu / measured["window_s"], 3) if measured["window_s"] else None
    measured["server_cpu_us_per_delivery"] = round(cpu * 1e6 / measured["delivered"], 1) \
        if measured["delivered"] else None
    return measured


def row(case: str, config: FanoutConfig, measured: dict[str, Any]) -> dict[str, Any]:
    return {
        "case": case,
        "sockets": measured["sockets"],
        "sessions": measured["sessions"],
        "target /s": config.rate,
        "delivered /s": measured["delivered_per_s"],
        "recorded /s": None if not measured["delivered_per_s"] else round(
            measured["delivered_per_s"] / config.sockets_per_session, 1),
        "delivered": measured["delivered"],
        "p50 ms": measured["latency"]["p50_ms"],
        "p99 ms": measured["latency"]["p99_ms"],
        "max ms": measured["latency"]["max_ms"],
        # After the first 2 s, while the streams are being started.
        "steady p99 ms": measured["latency_steady"]["p99_ms"],
        "worst second p99 ms": max((s["p99_ms"] for s in measured["latency_by_second"]), default=None),
        "gaps": measured["gaps"],
        "duplicates": measured["duplicates"],
        "unfinished": measured["unfinished_sockets"],
        "server CPU (cores)": measured.get("server_cpu_util"),
        "server CPU us/delivery": measured.get("server_cpu_us_per_delivery"),
        "machine cores busy": measured.get("machine_busy_cores"),
    }


def run(config: FanoutConfig) -> Result:
    result = Result("fanout", {"sockets": config.sockets, "rate": config.rate,
                               "sockets_per_session": config.sockets_per_session, "duration": config.duration})
    with workdir("fanout") as tmp, servers.embedded(tmp) as server:
        measured = measure(server, config, tmp)
    result.rows.append(row(f"{config.sockets:,} sockets, {config.rate:,.0f}/s", config, measured))
    result.notes.append("p99 ms of each second: " + ", ".join(
        f"{second['p99_ms']:.1f}" for second in measured["latency_by_second"]))
    result.checks = {"gaps": measured["gaps"], "duplicates": measured["duplicates"],
                     "reordered": measured["reordered"], "unfinished_sockets": measured["unfinished_sockets"],
                     "reader_errors": measured["reader_errors"]}
    p99 = measured["latency"]["p99_ms"]
    delivered = measured["delivered_per_s"] or 0.0
    at_target_size = config.sockets >= TARGET_SOCKETS and config.rate >= TARGET_RATE
    # A smaller run's p99 says nothing of the target's load: it is shown, not judged.
    result.target("delivery p99 (ms)", f"<= {TARGET_P99_MS:g} at {TARGET_RATE:,.0f}/s over {TARGET_SOCKETS:,} sockets",
                  p99, (p99 is not None and p99 <= TARGET_P99_MS) if at_target_size else None)
    if not at_target_size:
        result.notes.append(f"sized below the target ({config.sockets:,} sockets at {config.rate:,.0f}/s): the p99 "
                            f"target is only judged at {TARGET_SOCKETS:,} sockets and {TARGET_RATE:,.0f}/s")
    result.target("delivered rate (/s)", f">= {config.rate * 0.95:,.0f} (95% of the offered rate)", delivered,
                  delivered >= config.rate * 0.95)
    result.target("gaps + duplicates", "0", measured["gaps"] + measured["duplicates"],
                  measured["gaps"] + measured["duplicates"] == 0 and measured["unfinished_sockets"] == 0)
    return result
