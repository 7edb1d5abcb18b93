"""Resume under fire: every seq exactly once, in order, across disconnects, crashes and restarts."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from harness import UpServer
from wsclient import Login, Session, Sock, login, new_session, of_type, seqs


async def _submit_stats_until(http: httpx.AsyncClient, session: Session, stop: asyncio.Event) -> list[str]:
    """Keep submitting small executions (each a handful of events) until ``stop``."""
    started: list[str] = []
    n = 0
    while not stop.is_set():
        n += 1
        response = await http.post(
            "/api/intent/submit",
            json={"intent": "text.stats", "params": {"text": f"event storm number {n}"}},
            headers=session.headers,
        )
        assert response.status_code == 202, response.text
        started.append(response.json()["execution_id"])
        await asyncio.sleep(0.02)
    return started


async def _log(http: httpx.AsyncClient, session: Session) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = await http.get(
            f"/api/sessions/{session.session_id}/events",
            params={"after_seq": items[-1]["seq"] if items else 0, "limit": 1000},
            headers=session.headers,
        )
        batch = page.json()["items"]
        if not batch:
            return items
        items.extend(batch)


async def _finished(http: httpx.AsyncClient, session: Session, execution_ids: list[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    for execution_id in execution_ids:
        while True:
            status = (await http.get(f"/api/intent/executions/{execution_id}", headers=session.headers)).json()["status"]
            if status in ("completed", "failed", "cancelled"):
                break
            assert time.monotonic() < deadline, f"{execution_id} still {status}"
            await asyncio.sleep(0.1)


def _exactly_once_in_order(received: list[dict[str, Any]], log: list[dict[str, Any]]) -> None:
    numbers = seqs(received)
    assert sorted(numbers) == list(range(1, len(log) + 1)), "every seq of the log, no gap"
    assert len(numbers) == len(set(numbers)), "no duplicate"
    assert {e["seq"]: e for e in received} == {e["seq"]: e for e in log}, "the same events as the log"


async def test_reconnect_with_after_seq_while_events_stream(
    http: httpx.AsyncClient, shared_up: UpServer, session: Session
) -> None:
    first = await Sock.open(shared_up.ws_url, token=session.session_token)
    await first.send({"type": "intent", "id": "w", "intent": "wait", "params": {"seconds": 3}})
    waiting = (await first.reply("w"))["execution_id"]
    stop = asyncio.Event()
    storm = asyncio.create_task(_submit_stats_until(http, session, stop))
    await first.until(of_type("execution.progress", waiting), timeout=5)
    first.ws.transport.abort()  # the network drops: no close frame
    received = list(first.events)
    assert received, "the first socket saw events before it dropped"

    # Reconnect while the storm keeps recording events: replay and live meet.
    second = await Sock.open(shared_up.ws_url, token=session.session_token, after_seq=received[-1]["seq"])
    await second.until(of_type("execution.completed", waiting), timeout=10)
    stop.set()
    submitted = await storm
    await _finished(http, session, submitted)
    log = await _log(http, session)
    while not second.events or second.events[-1]["seq"] < len(log):
        await second.recv(timeout=5)
    assert seqs(second.events) == list(range(received[-1]["seq"] + 1, len(log) + 1)), "in order, no gap"
    _exactly_once_in_order(received + second.events, log)
    await second.close()


async def test_resume_message_replays_then_goes_live(
    http: httpx.AsyncClient, shared_up: UpServer, session: Session
) -> None:
    stop = asyncio.Event()
    storm = asyncio.create_task(_submit_stats_until(http, session, stop))
    await asyncio.sleep(0.5)
    sock = await Sock.open(shared_up.ws_url, "/api/ws", token=session.session_token)
    await sock.send({"type": "resume", "id": "r", "after_seq": 0})
    await asyncio.sleep(0.5)
    stop.set()
    submitted = await storm
    await _finished(http, session, submitted)
    log = await _log(http, session)
    while not sock.events or sock.events[-1]["seq"] < len(log):
        await sock.recv(timeout=5)
    # Live events that arrived before `resume` are delivered again from seq 1:
    # from the resume point on, the stream is the log, exactly once.
    numbers = seqs(sock.events)
    after_resume = sock.events[len(numbers) - 1 - numbers[::-1].index(1):]
    assert seqs(after_resume) == list(range(1, len(log) + 1))
    assert {"type": "ack", "id": "r"} in sock.replies
    await sock.close()


async def test_kill_9_and_restart_resumes_the_execution_and_the_stream(up_server) -> None:
    server: UpServer = up_server()
    async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        auth: Login = await login(http, server.admin_email, server.admin_password)
        session = await new_session(http, auth)
        sock = await Sock.open(server.ws_url, token=session.session_token)
        await sock.send({"type": "intent", "id": "w", "intent": "wait", "params": {"seconds": 4}})
        waiting = (await sock.reply("w"))["execution_id"]
        await sock.until(of_type("execution.progress", waiting), timeout=5)
        received = list(sock.events)

        server.kill9()
        restarted_at = time.time()
        server.start()

        again = await Sock.open(server.ws_url, token=session.session_token, after_seq=received[-1]["seq"])
        done = await again.until(of_type("execution.completed", waiting), timeout=20)
        assert done["created_at"] >= restarted_at, "the execution finished after the restart"
        log = await _log(http, session)
        _exactly_once_in_order(received + again.events, log)
        assert [e for e in log if e["type"] == "execution.completed" and e["execution_id"] == waiting] == [done]
        await again.close()


async def test_a_cursor_beyond_the_log_is_capped_so_later_events_are_not_skipped(
    shared_up: UpServer, http: httpx.AsyncClient, session: Session
) -> None:
    sock = await Sock.open(shared_up.ws_url, token=session.session_token, after_seq=1_000_000)
    await sock.send({"type": "intent", "id": "e", "intent": "echo", "params": {"message": "hi"}})
    execution_id = (await sock.reply("e"))["execution_id"]
    await sock.until(of_type("execution.completed", execution_id))
    await sock.send({"type": "resume", "after_seq": 10**15})
    await sock.send({"type": "intent", "id": "f", "intent": "echo", "params": {"message": "again"}})
    second = (await sock.reply("f"))["execution_id"]
    await sock.until(of_type("execution.completed", second))
    assert seqs(sock.events) == list(range(1, len(sock.events) + 1))
    await sock.close()
