"""`intentd routes check`: the contract against itself, the planes and the rendered gateway.

Every check returns problems, one per culprit, each naming the path and the
plane, so the CLI and the admin API can print them as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from intentd.gateway.contract import CONTRACT, PLANES, WS_TIMEOUT_SECONDS, Plane, Route
from intentd.gateway.routing import (
    Router,
    gateway_routers,
    gateway_target,
    probe_paths,
    segment_match,
)
from intentd.gateway.tables import RouteTables, ServedRoute

CheckName = Literal["contract", "priority", "timeouts", "served", "orphan", "rendered"]

_LITERAL_PREFIX = re.compile(r"^/([A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*)?$")


@dataclass(frozen=True, slots=True)
class RouteProblem:
    check: CheckName
    path: str
    plane: str  # a plane name, or "gateway" for the rendered configuration
    message: str

    def __str__(self) -> str:
        return f"{self.path} [{self.plane}] {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "path": self.path, "plane": self.plane, "message": self.message}


def check_routes(tables: RouteTables, contract: tuple[Route, ...] = CONTRACT) -> list[RouteProblem]:
    """All checks: the contract's own consistency, the planes' route tables, the rendered configs."""
    problems = check_contract(contract)
    problems += check_served(contract, tables)
    problems += check_orphans(contract, tables)
    problems += check_rendered(contract)
    return problems


def check_contract(contract: tuple[Route, ...]) -> list[RouteProblem]:
    """Literal segment-bounded prefixes, no duplicates, strict priorities, WebSocket timeouts."""
    problems: list[RouteProblem] = []
    seen: dict[tuple[str, bool, str], Route] = {}
    for route in contract:
        if not _LITERAL_PREFIX.match(route.prefix):
            problems.append(
                RouteProblem(
                    "contract",
                    route.prefix,
                    route.owner,
                    "is not a literal path prefix: it must start with '/', have no trailing '/', "
                    "no empty segment and no wildcard (matching is segment-bounded)",
                )
            )
        # Public entries are one per prefix; operational ones one per prefix and plane.
        key = (route.prefix, route.public, "" if route.public else route.owner)
        if key in seen:
            problems.append(
                RouteProblem(
                    "contract",
                    route.prefix,
                    route.owner,
                    f"is listed twice (also owned by {seen[key].owner}): one entry per prefix",
                )
            )
        seen.setdefault(key, route)
        if route.kind == "websocket" and (route.idle_timeout or 0) < WS_TIMEOUT_SECONDS:
            problems.append(
                RouteProblem(
                    "timeouts",
                    route.prefix,
                    route.owner,
                    f"is a WebSocket entry without the long-lived proxy timeouts "
                    f"(idle_timeout={route.idle_timeout}, need >= {WS_TIMEOUT_SECONDS} s): "
                    "proxies would drop idle sockets after their 60 s default",
                )
            )
    public = {(r.prefix, r.owner) for r in contract if r.public}
    for route in contract:
        if not route.public and (route.prefix, route.owner) in public:
            problems.append(
                RouteProblem(
                    "contract",
                    route.prefix,
                    route.owner,
                    "is both a public entry and an operational entry of the same plane",
                )
            )
    problems += _check_priorities(contract)
    return problems


def _check_priorities(contract: tuple[Route, ...]) -> list[RouteProblem]:
    """Among the gateway's routers, overlapping ones have distinct priorities, the most specific highest."""
    problems: list[RouteProblem] = []
    routers = gateway_routers(contract)
    for i, a in enumerate(routers):
        for b in routers[i + 1 :]:
            if not (segment_match(a.prefix, b.prefix) or segment_match(b.prefix, a.prefix)):
                continue
            if a.priority == b.priority:
                problems.append(
                    RouteProblem(
                        "priority",
                        b.prefix,
                        _target(b),
                        f"shares priority {b.priority} with overlapping entry {a.prefix} "
                        f"({_target(a)}): the proxy would pick either",
                    )
                )
                continue
            general, specific = (a, b) if segment_match(a.prefix, b.prefix) else (b, a)
            if specific.priority < general.priority:
                problems.append(
                    RouteProblem(
                        "priority",
                        specific.prefix,
                        _target(specific),
                        f"has priority {specific.priority}, below the broader entry "
                        f"{general.prefix} ({_target(general)}, priority {general.priority}), "
                        "which would shadow it: the most specific entry must win",
                    )
                )
    return problems


def _target(router: Router) -> str:
    return router.target or "gateway 404"


def covering_entry(plane: Plane, path: str, contract: tuple[Route, ...]) -> Route | None:
    """The entry that decides where ``path`` goes, seen from ``plane``.

    Public entries decide for everyone; an operational entry only covers its own plane.
    """
    candidates = [r for r in contract if (r.public or r.owner == plane) and r.matches(path)]
    # At equal priority the plane's own entry covers it (/health: public for experience,
    # operational for runtime).
    return max(candidates, key=lambda r: (r.priority, r.owner == plane), default=None)


def _fits(route: Route, served: ServedRoute) -> bool:
    if route.kind == "websocket":
        return served.kind == "websocket"
    if route.kind == "static":
        # A mounted static app, or a page served at the prefix itself (a console with an SPA fallback).
        return served.kind == "mount" or (served.path == route.prefix and "GET" in served.methods)
    return served.kind in ("http", "mount")


_KIND_WORDS = {"websocket": "WebSocket route", "static": "static app or page", "http": "HTTP route"}


def check_served(contract: tuple[Route, ...], tables: RouteTables) -> list[RouteProblem]:
    """Every entry is served by its owner: a route of the right kind that the entry covers."""
    problems: list[RouteProblem] = []
    for plane in PLANES:
        if plane not in tables:
            problems.append(RouteProblem("served", "*", plane, "no route table for this plane"))
    for route in contract:
        served = tables.get(route.owner)
        if served is None:
            continue
        if any(_fits(route, s) and covering_entry(route.owner, s.path, contract) == route for s in served):
            continue
        message = (
            f"is owned by {route.owner} ({route.kind}), but {route.owner} serves no "
            f"{_KIND_WORDS[route.kind]} under it"
        )
        problems.append(
            RouteProblem("served", route.prefix, route.owner, message + _served_hints(route, tables))
        )
    return problems


def _served_hints(route: Route, tables: RouteTables) -> str:
    hints: list[str] = []
    for plane, served in tables.items():
        if plane == route.owner:
            continue
        elsewhere = [s for s in served if _fits(route, s) and route.matches(s.path)]
        if elsewhere:
            hints.append(f"{plane} serves {elsewhere[0].describe()}: the entry should name {plane}")
    near = sorted(
        {
            s.path.split("/")[route.prefix.count("/")]
            for s in tables.get(route.owner, ())
            if s.path.startswith(route.prefix) and not route.matches(s.path)
        }
    )
    for segment in near:
        parent = route.prefix.rsplit("/", 1)[0]
        hints.append(
            f"{route.owner} serves {parent}/{segment}, which {route.prefix} does not match "
            "(prefixes are segment-bounded)"
        )
    return "; " + "; ".join(hints) if hints else ""


def check_orphans(contract: tuple[Route, ...], tables: RouteTables) -> list[RouteProblem]:
    """Every served route is covered by an entry naming its plane, and of a kind that fits."""
    problems: list[RouteProblem] = []
    for plane, served in tables.items():
        for route in served:
            entry = covering_entry(plane, route.path, contract)
            if entry is None:
                problems.append(
                    RouteProblem(
                        "orphan", route.path, plane, f"{route.describe()} is covered by no contract entry"
                    )
                )
            elif entry.owner != plane:
                problems.append(
                    RouteProblem(
                        "orphan",
                        route.path,
                        plane,
                        f"{plane} serves {route.describe()}, but the contract sends it to "
                        f"{entry.owner} (entry {entry.prefix}): the gateway would never reach it "
                        f"here; add an entry owned by {plane} or move the route",
                    )
                )
            elif route.kind == "websocket" and entry.kind != "websocket":
                problems.append(
                    RouteProblem(
                        "orphan",
                        route.path,
                        plane,
                        f"{route.describe()} is covered by {entry.prefix}, a {entry.kind} entry: "
                        "the gateway would proxy it without WebSocket upgrade and timeouts; "
                        "add a websocket entry for it",
                    )
                )
    return problems


def check_rendered(contract: tuple[Route, ...]) -> list[RouteProblem]:
    """The rendered Traefik and nginx configs send every probe path where the contract does."""
    # Imported here: the renderers and evaluators are only needed for this check.
    from intentd.gateway.evaluate import nginx_target, traefik_target
    from intentd.gateway.render import render_nginx, traefik_dynamic

    problems: list[RouteProblem] = []
    if any(p.check in ("contract", "priority") for p in check_contract(contract)):
        return problems  # the renderers' input is already wrong; those problems say why
    dynamic = traefik_dynamic(contract)
    nginx_conf = render_nginx(contract)
    for path in probe_paths(contract):
        expected = gateway_target(path, contract)
        for proxy, evaluate in (
            ("traefik", lambda p: traefik_target(dynamic, p)),
            ("nginx", lambda p: nginx_target(nginx_conf, p)),
        ):
            try:
                actual = evaluate(path)
            except ValueError as exc:
                actual_text = f"an ambiguous match ({exc})"
            else:
                if actual == expected:
                    continue
                actual_text = actual or "404"
            problems.append(
                RouteProblem(
                    "rendered",
                    path,
                    "gateway",
                    f"the rendered {proxy} config sends it to {actual_text}; "
                    f"the contract says {expected or '404 (not routed)'}",
                )
            )
    return problems
