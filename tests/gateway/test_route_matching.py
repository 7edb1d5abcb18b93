"""Which rule wins for a path: the contract, the static evaluators, and the real proxies agree.

One table drives all of them. The evaluators read the rendered configs back;
real nginx and real Traefik, with stand-in planes behind them, are the
authority the evaluators mirror.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml
from gateway_proxies import start_nginx, start_traefik
from websockets.asyncio.client import connect

from intentd.gateway.contract import PLANE_HEADER
from intentd.gateway.evaluate import (
    AmbiguousMatch,
    nginx_target,
    nginx_winner,
    parse_traefik_rule,
    traefik_target,
    traefik_winner,
)
from intentd.gateway.render import Upstreams, render_nginx, traefik_dynamic
from intentd.gateway.routing import gateway_target

# path, Traefik router that must win, plane (None: the gateway answers 404)
TABLE: list[tuple[str, str, str | None]] = [
    ("/api/runtime/agent", "api-runtime-agent", "experience"),
    ("/api/runtime/agent/", "api-runtime-agent", "experience"),
    ("/api/runtime/agentx", "api-runtime", "runtime"),
    ("/api/runtime/executions", "api-runtime", "runtime"),
    ("/api/runtime/executions/abc/events", "api-runtime", "runtime"),
    ("/api/runtime", "api-runtime", "runtime"),
    ("/api/runtimex", "console", "experience"),
    ("/api/sessions", "api-sessions", "experience"),
    ("/api/sessions/x", "api-sessions", "experience"),
    ("/api/sessionsx", "console", "experience"),
    ("/api/session", "console", "experience"),
    ("/api/auth/login", "api-auth", "experience"),
    ("/api/intent/submit", "api-intent", "experience"),
    ("/api/admin/users", "api-admin", "experience"),
    ("/api/ws", "api-ws", "experience"),
    ("/health", "health", "experience"),
    ("/healthz", "console", "experience"),
    ("/metrics", "not-routed-metrics", None),
    ("/metrics/x", "not-routed-metrics", None),
    ("/metricsx", "console", "experience"),
    ("/ready", "not-routed-ready", None),
    ("/", "console", "experience"),
    ("/index.html", "console", "experience"),
    ("/assets/app.js", "console", "experience"),
]


@pytest.mark.parametrize(("path", "router", "plane"), TABLE)
def test_contract_and_evaluators_agree(path: str, router: str, plane: str | None) -> None:
    dynamic = traefik_dynamic()
    nginx_conf = render_nginx()
    assert gateway_target(path) == plane
    winner = traefik_winner(dynamic, path)
    assert winner is not None and winner.router == router
    assert traefik_target(dynamic, path) == plane
    assert nginx_target(nginx_conf, path) == plane


def test_nginx_locations_are_segment_bounded() -> None:
    conf = render_nginx()
    assert nginx_winner(conf, "/api/sessions").path == "/api/sessions"  # type: ignore[union-attr]
    assert nginx_winner(conf, "/api/sessions/1").path == "/api/sessions/"  # type: ignore[union-attr]
    assert nginx_winner(conf, "/api/sessionsx").path == "/"  # type: ignore[union-attr]


def test_traefik_default_priority_is_rule_length_and_pathprefix_is_a_plain_prefix() -> None:
    # Why the renderer never emits a bare PathPrefix: the seed-style rule catches /api/sessions.
    dynamic = {
        "http": {
            "routers": {
                "session": {"rule": "PathPrefix(`/api/session`)", "service": "runtime"},
                "all": {"rule": "PathPrefix(`/`)", "service": "experience"},
            }
        }
    }
    winner = traefik_winner(dynamic, "/api/sessions/1")
    assert winner is not None and winner.router == "session"
    assert winner.priority == len("PathPrefix(`/api/session`)")
    dynamic["http"]["routers"]["all"]["priority"] = 100
    assert traefik_target(dynamic, "/api/sessions/1") == "experience"


def test_traefik_equal_priorities_on_a_shared_path_are_ambiguous() -> None:
    dynamic = {
        "http": {
            "routers": {
                "a": {"rule": "PathPrefix(`/api`)", "service": "runtime", "priority": 5},
                "b": {"rule": "PathPrefix(`/api/runtime`)", "service": "experience", "priority": 5},
            }
        }
    }
    with pytest.raises(AmbiguousMatch, match="priority 5"):
        traefik_winner(dynamic, "/api/runtime/agent")
    assert traefik_target(dynamic, "/api/x") == "runtime"


@pytest.mark.parametrize(
    ("rule", "matching", "not_matching"),
    [
        ("Path(`/a`) || PathPrefix(`/a/`)", ["/a", "/a/b"], ["/ab", "/"]),
        ("PathPrefix(`/a`) && !Path(`/a/x`)", ["/a", "/ab"], ["/a/x"]),
        ("(Path(`/a`) || Path(`/b`)) && !PathPrefix(`/b`)", ["/a"], ["/b", "/c"]),
        ("Path(`/a`, `/b`)", ["/a", "/b"], ["/c"]),
    ],
)
def test_traefik_rule_syntax(rule: str, matching: list[str], not_matching: list[str]) -> None:
    predicate = parse_traefik_rule(rule)
    assert all(predicate(p) for p in matching)
    assert not any(predicate(p) for p in not_matching)


def test_traefik_rule_parser_refuses_what_it_does_not_model() -> None:
    with pytest.raises(ValueError, match="Host"):
        parse_traefik_rule("Host(`example.com`)")
    with pytest.raises(ValueError):
        parse_traefik_rule("Path(`/a`) ||")


def _assert_routes_like_the_table(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for path, _router, plane in TABLE:
            response = client.get(path, params={"session_token": "t"})
            if plane is None:
                assert response.status_code == 404, path
                assert PLANE_HEADER not in response.headers, path
            else:
                assert response.status_code == 200, (path, response.status_code)
                assert response.headers[PLANE_HEADER] == plane, path
                # The path and query reach the plane unchanged.
                assert response.json()["path"] == path
                assert response.json()["query"] == "session_token=t"


async def _assert_sockets_reach_experience(base_url: str) -> None:
    for path in ("/api/runtime/agent", "/api/ws"):
        async with connect(base_url.replace("http://", "ws://") + path) as socket:
            first = yaml.safe_load(await socket.recv())
            assert first == {"plane": "experience", "path": path}
            await socket.send("echo")
            assert await socket.recv() == "echo"


@pytest.mark.nginx
async def test_real_nginx_routes_like_the_table(stub_upstreams: Upstreams, tmp_path: Path) -> None:
    nginx = start_nginx(tmp_path / "nginx", stub_upstreams)
    try:
        _assert_routes_like_the_table(nginx.url)
        await _assert_sockets_reach_experience(nginx.url)
        with httpx.Client(base_url=nginx.url, timeout=10) as client:
            forwarded = client.get("/api/auth/x").json()
            assert forwarded["forwarded_for"] == "127.0.0.1"
            assert forwarded["forwarded_proto"] == "http"
            assert client.post("/api/intent/submit", content=b"x" * 900_000).json()["bytes"] == 900_000
            assert client.post("/api/intent/submit", content=b"x" * (1024 * 1024 + 1)).status_code == 413
    finally:
        nginx.stop()


async def test_real_traefik_routes_like_the_table(stub_upstreams: Upstreams, tmp_path: Path) -> None:
    traefik, _api = start_traefik(tmp_path / "traefik", stub_upstreams)
    try:
        _assert_routes_like_the_table(traefik.url)
        await _assert_sockets_reach_experience(traefik.url)
    finally:
        traefik.stop()
