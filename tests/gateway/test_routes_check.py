"""`routes check` on synthetic planes: small FastAPI apps shaped like the real ones.

Each broken contract or plane must produce a problem naming the culprit path
and plane; the intact pair must produce none.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import typer
from fastapi import FastAPI, WebSocket
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from typer.testing import CliRunner

from intentd.cli import routes as routes_cli
from intentd.config import load_settings
from intentd.gateway import render, tables as gateway_tables
from intentd.gateway.check import (
    RouteProblem,
    check_contract,
    check_rendered,
    check_routes,
)
from intentd.gateway.contract import CONTRACT, Route, resolve
from intentd.gateway.tables import ServedRoute, route_tables, served_routes


def experience_app(console_dir: Path, *, extra: FastAPI | None = None) -> FastAPI:
    app = FastAPI(openapi_url="/api/openapi.json", docs_url=None, redoc_url=None)

    @app.post("/api/auth/login")
    async def login() -> None: ...

    @app.get("/api/sessions")
    async def sessions() -> None: ...

    @app.get("/api/sessions/{session_id}")
    async def session(session_id: str) -> None: ...

    @app.post("/api/intent/submit")
    async def submit() -> None: ...

    @app.get("/api/admin/users")
    async def users() -> None: ...

    @app.websocket("/api/ws")
    async def events(socket: WebSocket) -> None: ...

    @app.websocket("/api/runtime/agent")
    async def agent(socket: WebSocket) -> None: ...

    @app.get("/api/runtime/agent")  # the 426 answer to a plain GET
    async def agent_upgrade_required() -> None: ...

    for path in ("/health", "/ready", "/metrics"):
        app.add_api_route(path, lambda: None)
    if extra is not None:
        app.router.routes.extend(extra.router.routes)
    app.mount("/", StaticFiles(directory=console_dir))
    return app


def runtime_app() -> FastAPI:
    app = FastAPI(openapi_url="/api/runtime/openapi.json", docs_url=None, redoc_url=None)
    for path in (
        "/api/runtime/executions",
        "/api/runtime/executions/{id}",
        "/api/runtime/health",
        "/health",
        "/ready",
        "/metrics",
    ):
        app.add_api_route(path, lambda: None)
    return app


@pytest.fixture
def tables(tmp_path: Path) -> dict[str, list[ServedRoute]]:
    return {"experience": served_routes(experience_app(tmp_path)), "runtime": served_routes(runtime_app())}


def replace(target: str, **changes: object) -> tuple[Route, ...]:
    """The contract with the public entry for ``target`` changed."""
    return tuple(
        dataclasses.replace(r, **changes) if r.prefix == target and r.public else r for r in CONTRACT
    )


def without(target: str) -> tuple[Route, ...]:
    return tuple(r for r in CONTRACT if not (r.prefix == target and r.public))


def lines(problems: list[RouteProblem]) -> str:
    return "\n".join(str(p) for p in problems)


def test_the_contract_passes_against_planes_shaped_like_it(tables: dict) -> None:
    assert check_routes(tables) == []


def test_route_tables_see_http_websocket_and_mounts(tables: dict) -> None:
    served = set(tables["experience"])
    assert ServedRoute("/api/runtime/agent", "websocket") in served
    assert ServedRoute("/api/sessions/{session_id}", "http", ("GET",)) in served
    assert ServedRoute("/", "mount") in served


def test_mounted_sub_apps_are_flattened() -> None:
    inner = FastAPI(openapi_url=None)
    inner.add_api_route("/executions", lambda: None)
    outer = FastAPI(openapi_url=None)
    outer.router.routes.append(Mount("/api/runtime", app=inner))
    assert served_routes(outer) == [ServedRoute("/api/runtime/executions", "http", ("GET",))]


def test_seed_bug_agent_socket_owned_by_runtime(tables: dict) -> None:
    problems = check_routes(tables, replace("/api/runtime/agent", owner="runtime"))
    text = lines(problems)
    # The entry names a plane that does not serve it, and says who does.
    assert (
        "/api/runtime/agent [runtime] is owned by runtime (websocket), but runtime serves no WebSocket route"
        in text
    )
    assert "experience serves WebSocket /api/runtime/agent: the entry should name experience" in text
    # The experience plane's socket is now an orphan.
    assert (
        "/api/runtime/agent [experience] experience serves WebSocket /api/runtime/agent, "
        "but the contract sends it to runtime" in text
    )


def test_seed_bug_agent_socket_missing_so_runtime_catches_it(tables: dict) -> None:
    problems = check_routes(tables, without("/api/runtime/agent"))
    # Both the socket and the 426 GET at that path would reach the runtime plane.
    assert [(p.check, p.path, p.plane) for p in problems] == [
        ("orphan", "/api/runtime/agent", "experience")
    ] * 2
    assert all("sends it to runtime (entry /api/runtime)" in p.message for p in problems)
    assert "experience serves WebSocket /api/runtime/agent" in problems[0].message


def test_session_prefix_confusion_names_the_culprit(tables: dict) -> None:
    problems = check_routes(tables, replace("/api/sessions", prefix="/api/session"))
    assert [(p.check, p.path, p.plane) for p in problems] == [("served", "/api/session", "experience")]
    assert (
        "experience serves /api/sessions, which /api/session does not match (prefixes are segment-bounded)"
        in (problems[0].message)
    )


def test_prefix_must_be_literal_and_segment_bounded(tables: dict) -> None:
    for bad in ("/api/sessions/", "api/sessions", "/api/sess*", "/api//sessions"):
        problems = check_contract(replace("/api/sessions", prefix=bad))
        assert any(p.check == "contract" and p.path == bad for p in problems), bad


def test_overlapping_entries_sharing_a_priority(tables: dict) -> None:
    problems = check_contract(replace("/api/runtime/agent", explicit_priority=130))
    assert [str(p) for p in problems] == [
        "/api/runtime/agent [experience] shares priority 130 with overlapping entry /api/runtime (runtime): "
        "the proxy would pick either"
    ]


def test_specific_entry_below_its_broader_one(tables: dict) -> None:
    problems = check_contract(replace("/api/runtime/agent", explicit_priority=120))
    assert len(problems) == 1
    assert str(problems[0]).startswith(
        "/api/runtime/agent [experience] has priority 120, below the broader entry /api/runtime"
    )


def test_duplicate_entry(tables: dict) -> None:
    contract = (*CONTRACT, Route("/api/runtime", "experience", "http"))
    text = lines(check_contract(contract))
    assert "/api/runtime [experience] is listed twice (also owned by runtime)" in text
    assert "shares priority 130" in text


def test_non_overlapping_entries_may_share_a_priority() -> None:
    # /api/ws and /health have the same length, hence the same priority, and never overlap.
    assert Route("/api/ws", "experience", "http").priority == Route("/health", "experience", "http").priority
    assert check_contract(CONTRACT) == []


def test_websocket_entry_without_timeouts(tables: dict) -> None:
    problems = check_routes(tables, replace("/api/ws", idle_timeout=None))
    assert [(p.check, p.path, p.plane) for p in problems] == [("timeouts", "/api/ws", "experience")]
    assert "need >= 3600 s" in problems[0].message
    assert check_contract(replace("/api/ws", idle_timeout=60))[0].check == "timeouts"


def test_orphan_routes_on_either_plane(tmp_path: Path) -> None:
    extra = FastAPI()
    extra.add_api_route("/api/runtime/debug", lambda: None)
    runtime = runtime_app()
    runtime.add_api_route("/openapi.json", lambda: None)
    tables = {
        "experience": served_routes(experience_app(tmp_path, extra=extra)),
        "runtime": served_routes(runtime),
    }
    text = lines(check_routes(tables))
    assert (
        "/api/runtime/debug [experience] experience serves GET /api/runtime/debug, but the contract sends it to runtime"
        in text
    )
    assert (
        "/openapi.json [runtime] runtime serves GET /openapi.json, but the contract sends it to experience (entry /)"
        in text
    )


def test_websocket_route_under_an_http_entry(tmp_path: Path) -> None:
    extra = FastAPI()

    @extra.websocket("/api/admin/live")
    async def live(socket: WebSocket) -> None: ...

    tables = {
        "experience": served_routes(experience_app(tmp_path, extra=extra)),
        "runtime": served_routes(runtime_app()),
    }
    problems = check_routes(tables)
    assert [(p.check, p.path, p.plane) for p in problems] == [("orphan", "/api/admin/live", "experience")]
    assert "covered by /api/admin, a http entry" in problems[0].message


def test_missing_plane_table(tables: dict) -> None:
    problems = check_routes({"experience": tables["experience"]})
    assert ("served", "*", "runtime") in {(p.check, p.path, p.plane) for p in problems}


def test_operational_paths_are_covered_per_plane(tables: dict) -> None:
    # Runtime's /ready would be an orphan (routed to experience) without its own operational entry.
    contract = tuple(r for r in CONTRACT if not (r.prefix == "/ready" and r.owner == "runtime"))
    problems = check_routes(tables, contract)
    assert [(p.check, p.path, p.plane) for p in problems] == [("orphan", "/ready", "runtime")]


def test_static_console_must_be_mounted(tmp_path: Path) -> None:
    app = experience_app(tmp_path)
    app.router.routes.pop()  # the console mount
    tables = {"experience": served_routes(app), "runtime": served_routes(runtime_app())}
    problems = check_routes(tables)
    assert [(p.check, p.path, p.plane) for p in problems] == [("served", "/", "experience")]


def test_static_console_may_be_pages_instead_of_a_mount(tmp_path: Path) -> None:
    app = experience_app(tmp_path)
    app.router.routes.pop()
    app.add_api_route("/", lambda: None)
    app.add_api_route("/{path:path}", lambda path: None)  # the SPA fallback
    tables = {"experience": served_routes(app), "runtime": served_routes(runtime_app())}
    assert check_routes(tables) == []


def test_rendered_configs_agree_with_the_contract() -> None:
    assert check_rendered(CONTRACT) == []


def test_rendered_check_catches_a_renderer_that_is_not_segment_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(render, "traefik_rule", lambda prefix: f"PathPrefix(`{prefix}`)")
    text = lines(check_rendered(CONTRACT))
    assert (
        "/api/runtimex [gateway] the rendered traefik config sends it to runtime; the contract says experience"
        in text
    )
    assert "nginx" not in text


def test_resolve_prefers_public_entries_then_experience() -> None:
    assert resolve("/api/runtime/agent").owner == "experience"  # type: ignore[union-attr]
    assert resolve("/health").public  # type: ignore[union-attr]
    ready = resolve("/ready")
    assert ready is not None and ready.owner == "experience" and not ready.public


def test_the_real_planes_pass_the_real_contract() -> None:
    tables = route_tables(load_settings(env={}))
    assert check_routes(tables) == []
    assert ServedRoute("/api/runtime/agent", "websocket") in tables["experience"]
    assert any(r.path.startswith("/api/runtime/") for r in tables["runtime"])


def _cli() -> typer.Typer:
    app = typer.Typer()
    routes_cli.register(app)

    @app.callback()
    def main() -> None: ...

    return app


def test_cli_check_passes_on_the_real_planes() -> None:
    result = CliRunner().invoke(_cli(), ["routes", "check"], env={})
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: 14 contract entries")


def test_cli_check_fails_with_one_line_per_problem(monkeypatch: pytest.MonkeyPatch, tables: dict) -> None:
    broken = {
        "experience": [r for r in tables["experience"] if r.path != "/api/runtime/agent"],
        "runtime": [*tables["runtime"], ServedRoute("/openapi.json", "http", ("GET",))],
    }
    monkeypatch.setattr(gateway_tables, "route_tables", lambda _settings: broken)
    result = CliRunner().invoke(_cli(), ["routes", "check"])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "FAIL /api/runtime/agent [experience] is owned by experience (websocket), but experience serves no "
        "WebSocket route under it",
        "FAIL /openapi.json [runtime] runtime serves GET /openapi.json, but the contract sends it to experience "
        "(entry /): the gateway would never reach it here; add an entry owned by runtime or move the route",
    ]
    as_json = CliRunner().invoke(_cli(), ["routes", "check", "--format", "json"])
    assert as_json.exit_code == 1
    report = json.loads(as_json.output)
    assert report["ok"] is False
    assert [(p["check"], p["path"], p["plane"]) for p in report["problems"]] == [
        ("served", "/api/runtime/agent", "experience"),
        ("orphan", "/openapi.json", "runtime"),
    ]
