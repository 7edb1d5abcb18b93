"""`intentd serve experience` alone: it meets the runtime plane only through its API, the store and the bus."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import httpx
from harness import IntentdProcess
from wsclient import Sock, login, new_session, of_type


def _planes(intentd_process, redis_url: str, tmp_path: Path, **experience_env: str
            ) -> tuple[IntentdProcess, IntentdProcess, str]:
    """`serve runtime` and `serve experience` (admin ops@example.com): (runtime, experience, admin password)."""
    data_dir = str(tmp_path / "shared")
    shared = {"INTENTD_REDIS_URL": redis_url}
    runtime: IntentdProcess = intentd_process(["serve", "runtime", "--data-dir", data_dir], env=shared)
    password = secrets.token_urlsafe(12)
    experience: IntentdProcess = intentd_process(
        ["serve", "experience", "--data-dir", data_dir],
        env={**shared, "INTENTD_RUNTIME_URL": runtime.url, "INTENTD_ADMIN_EMAIL": "ops@example.com",
             "INTENTD_ADMIN_PASSWORD": password, **experience_env},
    )
    return runtime, experience, password


async def test_experience_process_talks_to_a_separate_runtime_process(
    intentd_process, redis_url: str, tmp_path: Path
) -> None:
    _, experience, password = _planes(intentd_process, redis_url, tmp_path)
    async with httpx.AsyncClient(base_url=experience.url, timeout=15) as http:
        ready = await http.get("/ready")
        assert ready.status_code == 200 and ready.json()["checks"]["runtime"] == "ok"
        assert ready.headers["x-intentd-plane"] == "experience"
        # The runtime API is not served by the experience process.
        assert (await http.get("/api/runtime/health")).status_code == 404

        auth = await login(http, "ops@example.com", password)
        session = await new_session(http, auth)
        sock = await Sock.open(experience.ws_url, token=session.session_token)
        await sock.send({"type": "intent", "id": "w", "intent": "wait", "params": {"seconds": 1}})
        execution_id = (await sock.reply("w"))["execution_id"]
        done = await sock.until(of_type("execution.completed", execution_id), timeout=15)
        assert done["data"]["result"] == {"waited": 1.0}
        assert [e["seq"] for e in sock.events] == list(range(1, len(sock.events) + 1))

        revoked = time.monotonic()
        assert (await http.delete(f"/api/sessions/{session.session_id}", headers=auth.headers)).status_code == 204
        assert (await sock.recv(timeout=1))["code"] == "unauthorized"
        assert (await sock.closed(timeout=1)).code == 4401
        assert time.monotonic() - revoked < 1


def _batches(metrics: str) -> tuple[float, float]:
    """(requests, executions) of POST /executions/batch so far, from the runtime's /metrics."""
    values = dict(
        line.rsplit(" ", 1) for line in metrics.splitlines() if line.startswith("intentd_execution_batch_items_")
    )
    return float(values.get("intentd_execution_batch_items_count", 0)), float(
        values.get("intentd_execution_batch_items_sum", 0))


async def test_pipelined_intents_travel_together_and_outlive_their_socket(
    intentd_process, redis_url: str, tmp_path: Path
) -> None:
    """One socket's pipelined intents are handled side by side, and reach the
    runtime in shared requests; closing the socket loses none of them."""
    # A burst of intents on one socket, not a rate-limit test.
    runtime, experience, password = _planes(
        intentd_process, redis_url, tmp_path,
        INTENTD_SOCKET_MESSAGES_PER_SECOND="1000", INTENTD_INTENTS_PER_MINUTE="1000",
    )
    count = 60
    async with httpx.AsyncClient(base_url=experience.url, timeout=15) as http, \
            httpx.AsyncClient(base_url=runtime.url, timeout=15) as runtime_http:
        auth = await login(http, "ops@example.com", password)
        session = await new_session(http, auth)
        before = _batches((await runtime_http.get("/metrics")).text)
        sock = await Sock.open(experience.ws_url, token=session.session_token)
        for i in range(count):
            await sock.send({"type": "intent", "id": i, "intent": "echo", "params": {"n": i}})
        # Acks may come in any order: each names its message.
        await sock.until(lambda _: len([r for r in sock.replies if r["type"] == "ack"]) == count
                         and len([e for e in sock.events if e["type"] == "execution.completed"]) == count, timeout=15)
        assert not [r for r in sock.replies if r["type"] not in ("ready", "ack")], sock.replies
        acks = {r["id"]: r["execution_id"] for r in sock.replies if r["type"] == "ack"}
        assert sorted(acks) == list(range(count)) and len(set(acks.values())) == count
        completed = {e["execution_id"]: e["data"]["result"] for e in sock.events if e["type"] == "execution.completed"}
        assert {i: completed[acks[i]] for i in acks} == {i: {"n": i} for i in range(count)}
        assert [e["seq"] for e in sock.events] == list(range(1, len(sock.events) + 1))
        requests, executions = (a - b for a, b in zip(_batches((await runtime_http.get("/metrics")).text), before))
        assert executions == count
        assert requests < count, "a socket's pipelined intents were submitted one at a time"

        # Closed right after sending: every intent sent is still accepted and run.
        sock = await Sock.open(experience.ws_url, token=session.session_token)
        for i in range(count):
            await sock.send({"type": "intent", "id": i, "intent": "echo", "params": {"late": i}})
        await sock.close()
        listed: list[dict] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            page = await http.get("/api/admin/executions", headers=auth.headers,
                                  params={"session_id": session.session_id, "status": "completed", "limit": 500})
            listed = [e for e in page.json()["items"] if "late" in e["params"]]
            if len(listed) == count:
                break
            await asyncio.sleep(0.1)
        assert sorted(e["params"]["late"] for e in listed) == list(range(count))
