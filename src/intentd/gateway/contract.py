"""The route contract: which plane owns which public path (DESIGN §3).

This is data, and a leaf: both planes, the embedded dispatcher, the proxy
renderers and `intentd routes check` read it; it imports nothing of theirs.
"The endpoint name is a contract, not a locator": /api/runtime/agent belongs
to experience although its name says runtime.

Besides the public entries, each plane serves operational endpoints (`/ready`,
`/metrics`, the runtime's own `/health`) that the gateway must not route to
it: they are entries too (``public=False``), one per plane, so that `routes
check` knows who serves them. The gateway answers 404 for an operational path
unless a public entry owns it (`/health` goes to experience).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Plane = Literal["experience", "runtime"]
Kind = Literal["http", "websocket", "static"]

PLANES: tuple[Plane, ...] = ("experience", "runtime")
DEFAULT_PORTS: dict[Plane, int] = {"experience": 8001, "runtime": 8000}
PLANE_HEADER = "X-Intentd-Plane"

# What a WebSocket route needs from a proxy so that an idle, pinged socket
# lives for hours (nginx proxy_read_timeout/proxy_send_timeout, Traefik idleTimeout).
WS_TIMEOUT_SECONDS = 3600


def default_priority(prefix: str) -> int:
    """Longer prefix, higher priority: the most specific entry wins by construction."""
    return 10 + 10 * len(prefix.rstrip("/"))


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str  # segment-bounded: "/api/runtime" matches /api/runtime and /api/runtime/x only
    owner: Plane
    kind: Kind
    public: bool = True  # False: operational, probed on its owner directly; never routed there by the gateway
    note: str = ""
    # Seconds a proxied connection may stay silent; WebSocket entries need >= WS_TIMEOUT_SECONDS.
    idle_timeout: int | None = None
    # None: derived from the prefix length, which orders overlapping entries by construction.
    explicit_priority: int | None = None

    @property
    def priority(self) -> int:
        return self.explicit_priority or default_priority(self.prefix)

    @property
    def name(self) -> str:
        """Stable identifier (proxy router names): ``/api/runtime/agent`` -> ``api-runtime-agent``."""
        base = self.prefix.strip("/").replace("/", "-") or "console"
        return base if self.public else f"{self.owner}-{base}"

    def matches(self, path: str) -> bool:
        if self.prefix == "/":
            return path.startswith("/")
        return path == self.prefix or path.startswith(self.prefix + "/")


def _ws(prefix: str, note: str) -> Route:
    return Route(prefix, "experience", "websocket", note=note, idle_timeout=WS_TIMEOUT_SECONDS)


def _operational(plane: Plane) -> tuple[Route, ...]:
    routes = (
        Route("/ready", plane, "http", public=False, note="readiness: dependencies reachable"),
        Route("/metrics", plane, "http", public=False, note="Prometheus metrics"),
    )
    if plane == "runtime":
        # Liveness for the runtime's own probes; the public /health is experience's.
        routes += (Route("/health", plane, "http", public=False, note="liveness"),)
    return routes


CONTRACT: tuple[Route, ...] = (
    Route("/api/auth", "experience", "http"),
    Route("/api/sessions", "experience", "http"),
    Route("/api/intent", "experience", "http"),
    Route("/api/admin", "experience", "http"),
    _ws("/api/ws", "session event stream, read-only"),
    _ws("/api/runtime/agent", "agent conversation"),
    Route("/api/runtime", "runtime", "http", note="service token or admin only"),
    Route("/health", "experience", "http", note="liveness"),
    Route("/", "experience", "static", note="web console"),
    *_operational("experience"),
    *_operational("runtime"),
)


def resolve(path: str, contract: tuple[Route, ...] = CONTRACT) -> Route | None:
    """The entry a path belongs to: the matching entry with the highest priority.

    Ties (an operational path such as /ready that each plane serves) go to the
    entry listed first: public entries come first, then experience's.
    """
    best: Route | None = None
    for route in contract:
        if route.matches(path) and (best is None or route.priority > best.priority):
            best = route
    return best
