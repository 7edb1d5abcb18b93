"""What the gateway does with a path, derived from the contract.

The renderers turn this into proxy configuration; the evaluators read the
rendered configuration back; `routes check` compares the two.
"""

from __future__ import annotations

from dataclasses import dataclass

from intentd.gateway.contract import CONTRACT, Plane, Route

# Probe suffixes: inside an entry, and the near miss that must not match it.
_INSIDE = "/probe"
_NEAR_MISS = "x"


@dataclass(frozen=True, slots=True)
class Router:
    """One gateway rule: a contract entry, or the refusal of an operational path."""

    name: str
    prefix: str
    priority: int
    target: Plane | None  # None: refused with 404 (operational endpoints)
    kind: str
    idle_timeout: int | None


def gateway_routers(contract: tuple[Route, ...] = CONTRACT) -> list[Router]:
    """One router per public entry, plus one refusing router per operational prefix.

    Operational entries of both planes share a prefix (/ready, /metrics): the
    gateway refuses the prefix once.
    """
    routers = [
        Router(r.name, r.prefix, r.priority, r.owner, r.kind, r.idle_timeout) for r in contract if r.public
    ]
    public_prefixes = {r.prefix for r in contract if r.public}
    refused: dict[str, Route] = {}
    for route in contract:
        if not route.public and route.prefix not in public_prefixes:
            refused.setdefault(route.prefix, route)
    for prefix, route in refused.items():
        name = "not-routed-" + (prefix.strip("/").replace("/", "-") or "root")
        routers.append(Router(name, prefix, route.priority, None, route.kind, None))
    return sorted(routers, key=lambda r: (-r.priority, r.prefix))


def gateway_target(path: str, contract: tuple[Route, ...] = CONTRACT) -> Plane | None:
    """The plane the gateway should send ``path`` to; None when it must answer 404."""
    best: Router | None = None
    for router in gateway_routers(contract):
        if segment_match(router.prefix, path) and (best is None or router.priority > best.priority):
            best = router
    return best.target if best else None


def segment_match(prefix: str, path: str) -> bool:
    if prefix == "/":
        return path.startswith("/")
    return path == prefix or path.startswith(prefix + "/")


def probe_paths(contract: tuple[Route, ...] = CONTRACT) -> list[str]:
    """Paths that tell a segment-bounded, correctly ordered gateway from a broken one."""
    paths: list[str] = ["/", "/index.html", "/unknown/page"]
    for route in contract:
        if route.prefix == "/":
            continue
        paths += [route.prefix, route.prefix + _INSIDE, route.prefix + _NEAR_MISS]
    return list(dict.fromkeys(paths))
