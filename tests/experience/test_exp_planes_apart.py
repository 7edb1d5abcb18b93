"""`intentd serve experience` alone: it meets the runtime plane only through its API, the store and the bus."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx
from harness import IntentdProcess
from wsclient import Sock, login, new_session, of_type


async def test_experience_process_talks_to_a_separate_runtime_process(
    intentd_process, redis_url: str, tmp_path: Path
) -> None:
    data_dir = str(tmp_path / "shared")
    shared = {"INTENTD_REDIS_URL": redis_url}
    runtime: IntentdProcess = intentd_process(["serve", "runtime", "--data-dir", data_dir], env=shared)
    password = secrets.token_urlsafe(12)
    experience: IntentdProcess = intentd_process(
        ["serve", "experience", "--data-dir", data_dir],
        env={
            **shared,
            "INTENTD_RUNTIME_URL": runtime.url,
            "INTENTD_ADMIN_EMAIL": "ops@example.com",
            "INTENTD_ADMIN_PASSWORD": password,
        },
    )
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
