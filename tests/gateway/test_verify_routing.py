"""`intentd verify` steps 1 and 6 against real proxies with stand-in planes.

Steps 2-5 need the real experience plane's protocol (tokens, origins, ready,
pong): test_nginx_e2e.py runs the whole verify against the real planes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
from gateway_proxies import start_nginx, start_traefik
from harness import free_port

from intentd.gateway.contract import CONTRACT
from intentd.gateway.render import Upstreams
from intentd.gateway.verify import (
    StepResult,
    VerifyOptions,
    check_owners,
    check_traefik_routers,
)

# The seed's mistake: the agent socket routed to the runtime plane.
WS_TO_RUNTIME = tuple(
    dataclasses.replace(r, owner="runtime") if r.prefix == "/api/runtime/agent" else r for r in CONTRACT
)


async def owners(base_url: str) -> list[StepResult]:
    async with httpx.AsyncClient(timeout=10) as http:
        return await check_owners(http, VerifyOptions(base_url=base_url))


async def routers(api: str) -> list[StepResult]:
    async with httpx.AsyncClient(timeout=10) as http:
        return await check_traefik_routers(http, VerifyOptions(base_url="http://unused", traefik_api=api))


async def test_step6_passes_through_a_correct_nginx(stub_upstreams: Upstreams, tmp_path: Path) -> None:
    nginx = start_nginx(tmp_path, stub_upstreams)
    try:
        results = await owners(nginx.url)
    finally:
        nginx.stop()
    assert [r for r in results if not r.ok] == []
    names = [r.name for r in results]
    assert "/api/runtime/agent -> experience" in names
    assert "/metrics -> 404 (not routed)" in names
    assert "prefixes are segment-bounded" in names


async def test_step6_names_the_misrouted_path(stub_upstreams: Upstreams, tmp_path: Path) -> None:
    nginx = start_nginx(tmp_path, stub_upstreams, WS_TO_RUNTIME)
    try:
        results = await owners(nginx.url)
    finally:
        nginx.stop()
    failed = [r for r in results if r.ok is False]
    assert [r.name for r in failed] == ["/api/runtime/agent -> experience"]
    assert failed[0].diagnosis.startswith(
        "reached runtime, the contract owner is experience: the gateway routes /api/runtime/agent to the wrong plane"
    )


async def test_step6_reports_a_plane_that_is_down(tmp_path: Path) -> None:
    dead = {"experience": [f"127.0.0.1:{free_port()}"], "runtime": [f"127.0.0.1:{free_port()}"]}
    nginx = start_nginx(tmp_path, dead)
    try:
        results = await owners(nginx.url)
    finally:
        nginx.stop()
    health = next(r for r in results if r.name == "/health -> experience")
    assert health.ok is False
    assert "HTTP 502" in health.detail
    assert "could not reach the experience plane" in health.diagnosis


async def test_step1_passes_against_real_traefik(stub_upstreams: Upstreams, tmp_path: Path) -> None:
    traefik, api = start_traefik(tmp_path, stub_upstreams)
    try:
        results = await routers(api)
    finally:
        traefik.stop()
    assert [r for r in results if not r.ok] == []
    assert "router /api/runtime/agent" in [r.name for r in results]


async def test_step1_names_the_misrouted_router(stub_upstreams: Upstreams, tmp_path: Path) -> None:
    traefik, api = start_traefik(tmp_path, stub_upstreams, WS_TO_RUNTIME)
    try:
        results = await routers(api)
    finally:
        traefik.stop()
    failed = [r for r in results if r.ok is False]
    assert [r.name for r in failed] == ["router /api/runtime/agent"]
    assert failed[0].diagnosis.startswith("its service is runtime, the contract owner is experience")


async def test_step1_reports_an_unreachable_api() -> None:
    results = await routers(f"http://127.0.0.1:{free_port()}")
    assert [(r.name, r.ok) for r in results] == [("Traefik API", False)]
    assert "--traefik-api" in results[0].diagnosis
