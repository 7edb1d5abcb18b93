"""The route contract: which plane owns which public path (DESIGN §3).

This is data, and a leaf: both planes, the embedded dispatcher, the proxy
renderers and `intentd routes check` read it; it imports nothing of theirs.
"The endpoint name is a contract, not a locator": /api/runtime/agent belongs
to experience although its name says runtime.
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
# lives for hours.
WS_TIMEOUT_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str  # segment-bounded: "/api/runtime" matches /api/runtime and /api/runtime/x only
    owner: Plane
    kind: Kind
    public: bool = True  # False: served, but not routed by the gateway
    note: str = ""

    @property
    def name(self) -> str:
        return self.prefix.strip("/").replace("/", "-") or "console"

    @property
    def priority(self) -> int:
        """Longer prefix, higher priority: the most specific entry wins by construction."""
        return 10 + 10 * len(self.prefix.rstrip("/"))

    def matches(self, path: str) -> bool:
        if self.prefix == "/":
            return path.startswith("/")
        return path == self.prefix or path.startswith(self.prefix + "/")

    @property
    def idle_timeout(self) -> int | None:
        return WS_TIMEOUT_SECONDS if self.kind == "websocket" else None


CONTRACT: tuple[Route, ...] = (
    Route("/api/auth", "experience", "http"),
    Route("/api/sessions", "experience", "http"),
    Route("/api/intent", "experience", "http"),
    Route("/api/admin", "experience", "http"),
    Route("/api/ws", "experience", "websocket", note="session event stream, read-only"),
    Route("/api/runtime/agent", "experience", "websocket", note="agent conversation"),
    Route("/api/runtime", "runtime", "http", note="service token or admin only"),
    Route("/health", "experience", "http"),
    Route("/ready", "experience", "http", public=False),
    Route("/metrics", "experience", "http", public=False),
    Route("/", "experience", "static", note="web console"),
)


def resolve(path: str, contract: tuple[Route, ...] = CONTRACT) -> Route | None:
    """The entry a path belongs to: the matching entry with the highest priority."""
    best: Route | None = None
    for route in contract:
        if route.matches(path) and (best is None or route.priority > best.priority):
            best = route
    return best
