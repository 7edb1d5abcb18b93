"""The routes each plane really serves, read from its ASGI app's route table.

`routes check` compares these tables with the contract. The planes are found
by name (their app factories), never imported by the gateway's other modules,
so the contract stays a leaf.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import routing as fastapi_routing
from starlette.routing import BaseRoute, Host, Mount, WebSocketRoute
from starlette.routing import Route as HttpRoute

from intentd.gateway.contract import DEFAULT_PORTS, Plane

ServedKind = Literal["http", "websocket", "mount"]

# The app factories of the planes: each returns a FastAPI app whose routes
# exist at construction, without connecting to anything.
PLANE_FACTORIES: dict[Plane, str] = {
    "experience": "intentd.experience.app:create_experience_app",
    "runtime": "intentd.runtime.app:create_runtime_app",
}


@dataclass(frozen=True, slots=True)
class ServedRoute:
    path: str  # as declared, with parameters: /api/sessions/{session_id}
    kind: ServedKind  # "mount": an app mounted at path (static files) serving everything under it
    methods: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "websocket":
            return f"WebSocket {self.path}"
        if self.kind == "mount":
            return f"mount {self.path}"
        methods = ",".join(self.methods)
        return f"{methods} {self.path}" if methods else self.path


RouteTables = Mapping[Plane, Sequence[ServedRoute]]


def served_routes(app: Any) -> list[ServedRoute]:
    """Every HTTP route, WebSocket route and mount of a Starlette/FastAPI app, mounts flattened."""
    return list(_walk(getattr(app, "routes", ()), ""))


def _effective(routes: Sequence[BaseRoute]) -> Iterable[tuple[BaseRoute, str, tuple[str, ...]]]:
    """(route, full path, methods) for each route, through FastAPI's lazily included routers.

    FastAPI >= 0.16x keeps ``include_router`` results as one entry in ``app.routes``;
    ``iter_route_contexts`` resolves them with their prefixes.
    """
    iter_contexts = getattr(fastapi_routing, "iter_route_contexts", None)
    if iter_contexts is None:
        for route in routes:
            yield route, getattr(route, "path", ""), tuple(sorted(getattr(route, "methods", None) or ()))
        return
    for context in iter_contexts(routes):
        yield context.original_route, context.path or "", tuple(sorted(context.methods or ()))


def _walk(routes: Sequence[BaseRoute], prefix: str) -> Iterable[ServedRoute]:
    for route, path, methods in _effective(routes):
        if isinstance(route, WebSocketRoute):
            yield ServedRoute(prefix + path, "websocket")
        elif isinstance(route, HttpRoute):
            yield ServedRoute(prefix + path, "http", methods)
        elif isinstance(route, Mount):
            children = route.routes
            if children:
                yield from _walk(children, prefix + path)
            else:  # a leaf app (StaticFiles): serves the whole subtree
                yield ServedRoute(prefix + path or "/", "mount")
        elif isinstance(route, Host):
            # Host routing is not part of the contract: a host-bound subtree would
            # dodge the path checks, so report it as what it serves.
            yield from _walk(route.routes, prefix)


def load_factory(plane: Plane) -> Callable[[Any], Any]:
    module_name, _, attribute = PLANE_FACTORIES[plane].partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def route_tables(settings: Any) -> dict[Plane, list[ServedRoute]]:
    """Build both planes' apps (no connections are made) and read their route tables."""
    if not settings.runtime_url:
        # The apps are built only to read their routes; the experience factory insists on a runtime URL.
        placeholder = f"http://127.0.0.1:{DEFAULT_PORTS['runtime']}"
        settings = settings.model_copy(update={"runtime_url": placeholder})
    return {plane: served_routes(load_factory(plane)(settings)) for plane in PLANE_FACTORIES}
