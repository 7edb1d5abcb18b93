"""End to end through a real nginx: PostgreSQL-backed planes, the rendered config, `intentd verify`.

The planes run as `intentd serve experience|runtime` subprocesses (distributed
mode: PostgreSQL, Redis); nginx runs in the foreground with the config that
`intentd routes render --format nginx` produces, on free ports. A real Traefik
with the rendered static and dynamic configs fronts the same planes, so
`intentd verify --traefik-api` runs against it too.

The server's WebSocket ping interval is set beyond the idle period so that
nothing crosses the proxy while a socket idles: the 75 s idle test then proves
the rendered timeouts rather than the pings, and a control nginx with nginx's
default 60 s timeouts must cut the same socket.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_proxies import (
    ProxyProcess,
    nginx_config,
    run_nginx,
    start_nginx,
    start_traefik,
)
from harness import IntentdProcess, create_database, drop_database, free_port
from websockets.asyncio.client import ClientConnection, connect

from intentd.gateway.contract import CONTRACT, PLANE_HEADER
from intentd.gateway.verify import VerifyOptions, check_idle

pytestmark = [pytest.mark.nginx, pytest.mark.postgres, pytest.mark.redis]

IDLE_SECONDS = 75  # longer than nginx's 60 s default proxy_read_timeout
WAIT_SECONDS = 90
ADMIN_EMAIL = "operator@example.com"

# The seed's mistake: the agent socket routed to the runtime plane.
WS_TO_RUNTIME = tuple(
    dataclasses.replace(r, owner="runtime") if r.prefix == "/api/runtime/agent" else r for r in CONTRACT
)


@dataclass
class Deployment:
    gateway: ProxyProcess
    traefik: ProxyProcess
    traefik_api: str
    experience: IntentdProcess
    runtime: IntentdProcess
    admin_password: str
    directory: Path

    @property
    def ws_url(self) -> str:
        return self.gateway.url.replace("http://", "ws://")

    @property
    def upstreams(self) -> dict[str, list[str]]:
        return {
            "experience": [f"127.0.0.1:{self.experience.port}"],
            "runtime": [f"127.0.0.1:{self.runtime.port}"],
        }


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp("e2e")
    database = create_database()
    password = secrets.token_urlsafe(18)
    gateway_port, traefik_port = free_port(), free_port()
    runtime = IntentdProcess(["serve", "runtime"], log_path=directory / "runtime.log", cwd=directory)
    experience = IntentdProcess(["serve", "experience"], log_path=directory / "experience.log", cwd=directory)
    env = {
        "INTENTD_DATABASE_URL": database,
        "INTENTD_REDIS_URL": redis_url,
        "INTENTD_SECRET_KEY": secrets.token_urlsafe(32),
        "INTENTD_SERVICE_TOKEN": secrets.token_urlsafe(32),
        "INTENTD_RUNTIME_URL": runtime.url,
        "INTENTD_AUTO_MIGRATE": "true",
        "INTENTD_CORS_ORIGINS": f"http://127.0.0.1:{gateway_port},http://127.0.0.1:{traefik_port}",
        # No server pings while a test socket idles: only the proxy's timeouts are tested.
        "INTENTD_WS_PING_INTERVAL": "150",
    }
    runtime.env, experience.env = dict(env), dict(env)
    proxies: list[ProxyProcess] = []
    try:
        runtime.start(timeout=60)
        experience.start(timeout=60)
        # The operator's way to get an admin in distributed mode (docs/deploy.md).
        created = subprocess.run(
            [sys.executable, "-m", "intentd", "user", "create", ADMIN_EMAIL, "--admin", "--password-stdin"],
            input=password + "\n",
            env={**clean_env(), **env},
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert created.returncode == 0, created.stderr
        upstreams = {"experience": [f"127.0.0.1:{experience.port}"], "runtime": [f"127.0.0.1:{runtime.port}"]}
        proxies.append(start_nginx(directory / "nginx", upstreams, port=gateway_port))
        traefik, traefik_api = start_traefik(directory / "traefik", upstreams, port=traefik_port)
        proxies.append(traefik)
        yield Deployment(proxies[0], traefik, traefik_api, experience, runtime, password, directory)
    finally:
        for proxy in proxies:
            proxy.stop()
        experience.stop()
        runtime.stop()
        drop_database(database)


def clean_env() -> dict[str, str]:
    """The environment without the developer's own INTENTD_* settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("INTENTD_")}


async def session_token(deployment: Deployment) -> str:
    async with httpx.AsyncClient(base_url=deployment.gateway.url, timeout=10) as http:
        login = await http.post(
            "/api/auth/login", json={"email": ADMIN_EMAIL, "password": deployment.admin_password}
        )
        assert login.status_code == 200, login.text
        access = login.json()["access_token"]
        created = await http.post("/api/sessions", json={}, headers={"Authorization": f"Bearer {access}"})
        assert created.status_code == 201, created.text
        return created.json()["session_token"]


async def open_ready(url: str, token: str) -> ClientConnection:
    socket = await connect(f"{url}/api/runtime/agent", ping_interval=None, open_timeout=10)
    await socket.send(json.dumps({"type": "auth", "session_token": token}))
    ready = json.loads(await asyncio.wait_for(socket.recv(), 10))
    assert ready["type"] == "ready", ready
    return socket


async def read_until(socket: ClientConnection, done: str, timeout: float) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not messages or messages[-1].get("type") != done:
        messages.append(json.loads(await asyncio.wait_for(socket.recv(), deadline - time.monotonic())))
        assert messages[-1].get("type") != "error", messages[-1]
    return messages


async def run_verify_cli(base_url: str, *args: str, password: str) -> tuple[int, dict[str, Any]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "intentd",
        "verify",
        base_url,
        "--format",
        "json",
        "--email",
        ADMIN_EMAIL,
        *args,
        env={**clean_env(), "INTENTD_VERIFY_PASSWORD": password},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert stdout, stderr.decode()
    return process.returncode or 0, json.loads(stdout)


async def test_agent_conversation_through_nginx(deployment: Deployment) -> None:
    token = await session_token(deployment)
    socket = await open_ready(deployment.ws_url, token)
    try:
        await socket.send(json.dumps({"type": "message", "id": "m1", "text": "/help"}))
        messages = await read_until(socket, "agent.message", 30)
    finally:
        await socket.close()
    assert any(m.get("type") == "ack" and m.get("id") == "m1" for m in messages)
    reply = messages[-1]
    assert reply["seq"] >= 1 and "wait" in json.dumps(reply)  # /help lists the intents


async def test_plain_http_to_the_socket_says_how_to_connect(deployment: Deployment) -> None:
    response = httpx.get(f"{deployment.gateway.url}/api/runtime/agent?session_token=test", timeout=10)
    assert response.status_code == 426
    assert response.headers[PLANE_HEADER] == "experience"
    assert "WebSocket" in response.text


async def test_long_lived_sockets_and_verify_through_nginx(deployment: Deployment, tmp_path: Path) -> None:
    """Concurrently (to save wall time): idle 75 s, a 90 s `wait`, the 60 s control, and
    `intentd verify` through nginx and through Traefik."""
    # The control: the same config without the rendered timeouts, i.e. nginx's 60 s defaults.
    conf, port = nginx_config(tmp_path, deployment.upstreams)
    conf.write_text("\n".join(line for line in conf.read_text().splitlines() if "_timeout 3600s" not in line))
    control = run_nginx(tmp_path, conf, port)
    tokens = [await session_token(deployment) for _ in range(3)]

    async def idle() -> float:
        socket = await open_ready(deployment.ws_url, tokens[0])
        try:
            started = time.monotonic()
            await asyncio.sleep(IDLE_SECONDS)
            await socket.send(json.dumps({"type": "ping", "id": "p1"}))
            pong = await read_until(socket, "pong", 10)
            assert pong[-1]["id"] == "p1"
            return time.monotonic() - started
        finally:
            await socket.close()

    async def wait_execution() -> list[dict[str, Any]]:
        socket = await open_ready(deployment.ws_url, tokens[1])
        try:
            intent = {"type": "intent", "id": "i1", "intent": "wait", "params": {"seconds": WAIT_SECONDS}}
            await socket.send(json.dumps(intent))
            return await read_until(socket, "execution.completed", WAIT_SECONDS + 60)
        finally:
            await socket.close()

    async def control_idle() -> Any:
        options = VerifyOptions(base_url=control.url, idle=IDLE_SECONDS, session_token=tokens[2])
        return await check_idle(options, tokens[2])

    try:
        idled, events, control_result, (code, report), (traefik_code, traefik_report) = await asyncio.gather(
            idle(),
            wait_execution(),
            control_idle(),
            run_verify_cli(
                deployment.gateway.url,
                "--experience",
                deployment.experience.url,
                "--idle",
                str(IDLE_SECONDS),
                password=deployment.admin_password,
            ),
            run_verify_cli(
                deployment.traefik.url,
                "--traefik-api",
                deployment.traefik_api,
                "--idle",
                str(IDLE_SECONDS),
                password=deployment.admin_password,
            ),
        )
    finally:
        control.stop()

    assert idled >= IDLE_SECONDS
    kinds = [e["type"] for e in events]
    assert kinds.count("execution.progress") >= WAIT_SECONDS / 2
    assert kinds[-1] == "execution.completed"
    seqs = [e["seq"] for e in events if "seq" in e]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    # nginx's default timeouts cut the idle socket after 60 s, and verify says why.
    assert control_result.ok is False
    assert "proxy_read_timeout" in control_result.diagnosis
    cut_after = int(re.search(r"after (\d+) s idle", control_result.detail).group(1))  # type: ignore[union-attr]
    assert 55 <= cut_after < IDLE_SECONDS
    failed = [r for r in report["results"] if r["status"] != "pass"]
    assert code == 0 and failed == [], failed
    assert {r["step"] for r in report["results"]} == {"2", "3", "4", "5", "6"}
    failed = [r for r in traefik_report["results"] if r["status"] != "pass"]
    assert traefik_code == 0 and failed == [], failed
    assert {r["step"] for r in traefik_report["results"]} == {"1", "2", "3", "4", "5", "6"}


async def test_verify_diagnoses_the_socket_routed_to_runtime(deployment: Deployment, tmp_path: Path) -> None:
    wrong = start_nginx(tmp_path, deployment.upstreams, WS_TO_RUNTIME)
    try:
        code, report = await run_verify_cli(wrong.url, "--idle", "0", password=deployment.admin_password)
    finally:
        wrong.stop()
    assert code == 1
    failed = {r["name"]: r for r in report["results"] if r["status"] == "FAIL"}
    upgrade = failed["upgrade /api/runtime/agent through the gateway"]
    assert upgrade["detail"].startswith("HTTP 403")
    assert "runtime" in upgrade["diagnosis"]
    owner = failed["/api/runtime/agent -> experience"]
    assert owner["diagnosis"].startswith("reached runtime, the contract owner is experience")
    # Everything that does not go through the agent socket still passes.
    assert report["results"][-1] == {**report["results"][-1], "status": "pass"}
