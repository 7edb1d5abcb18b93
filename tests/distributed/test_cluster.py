"""Two experience and two runtime replicas on PostgreSQL + Redis, as real processes.

Clients talk to the experience replicas over real sockets; the tests kill,
stop and revoke across replicas and check that every client still sees every
event of its session exactly once, in order.
"""

from __future__ import annotations

import asyncio
import time

import httpx
from cluster_support import executor_of
from harness import IntentdProcess, free_port
from services import TempRedis
from wsclient import Session, Sock, login, new_session, of_type, seqs

ADMIN = "admin@example.com"


async def open_session(experience: IntentdProcess, password: str) -> tuple[httpx.AsyncClient, Session]:
    http = httpx.AsyncClient(base_url=experience.url, timeout=15)
    auth = await login(http, ADMIN, password)
    return http, await new_session(http, auth)


def assert_exactly_once(events: list[dict]) -> None:
    numbers = seqs(events)
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), f"gap or duplicate: {numbers}"


async def test_a_client_on_experience_a_sees_an_execution_finish_after_its_runtime_is_killed(cluster) -> None:
    runtime_a, runtime_b = cluster.runtime("runtime-a"), cluster.runtime("runtime-b")
    experience_a = cluster.experience("experience-a", runtime_a)
    http, session = await open_session(experience_a, cluster.env["INTENTD_ADMIN_PASSWORD"])
    sock = await Sock.open(experience_a.ws_url, token=session.session_token)
    await sock.send({"type": "intent", "id": "w", "intent": "wait", "params": {"seconds": 6}})
    execution_id = (await sock.reply("w"))["execution_id"]
    await sock.until(of_type("execution.progress", execution_id))

    owner = await asyncio.to_thread(executor_of, cluster.env["INTENTD_DATABASE_URL"], execution_id)
    victim, survivor = (runtime_a, runtime_b) if owner and f"-{runtime_a.pid}-" in owner else (runtime_b, runtime_a)
    victim.kill9()
    killed_at = time.monotonic()
    await sock.until(of_type("execution.completed", execution_id), timeout=6 + 10)
    assert time.monotonic() - killed_at < 6 + 10
    mine = [e for e in sock.events if e["execution_id"] == execution_id]
    assert [e["type"] for e in mine].count("execution.progress") == 6
    assert_exactly_once(sock.events)
    assert survivor.running()
    await sock.close()
    await http.aclose()


async def test_revocation_and_cancellation_cross_replicas_within_a_second(cluster) -> None:
    runtime = cluster.runtime("runtime-a")
    experience_a = cluster.experience("experience-a", runtime)
    experience_b = cluster.experience("experience-b", runtime)
    http_a, session = await open_session(experience_a, cluster.env["INTENTD_ADMIN_PASSWORD"])

    on_b = await Sock.open(experience_b.ws_url, token=session.session_token)
    await on_b.send({"type": "intent", "id": "w", "intent": "wait", "params": {"seconds": 30}})
    execution_id = (await on_b.reply("w"))["execution_id"]
    await on_b.until(of_type("execution.started", execution_id))
    asked = time.monotonic()
    cancelled = await http_a.post(f"/api/intent/executions/{execution_id}/cancel", headers=session.headers)
    assert cancelled.status_code == 202, cancelled.text
    await on_b.until(of_type("execution.cancelled", execution_id), timeout=5)
    assert time.monotonic() - asked < 1.5

    auth = await login(http_a, ADMIN, cluster.env["INTENTD_ADMIN_PASSWORD"])
    asked = time.monotonic()
    revoked = await http_a.delete(f"/api/sessions/{session.session_id}", headers=auth.headers)
    assert revoked.status_code == 204, revoked.text
    closed = await on_b.closed(timeout=5)
    assert closed.code == 4401
    assert time.monotonic() - asked < 1.0
    await http_a.aclose()


async def test_a_redis_outage_during_a_stream_loses_no_event(cluster, tmp_path) -> None:
    redis = TempRedis(tmp_path)
    redis.start()
    try:
        runtime = cluster.runtime("runtime-a", INTENTD_REDIS_URL=redis.url)
        experience = cluster.experience("experience-a", runtime, INTENTD_REDIS_URL=redis.url)
        http, session = await open_session(experience, cluster.env["INTENTD_ADMIN_PASSWORD"])
        sock = await Sock.open(experience.ws_url, token=session.session_token)
        await sock.send({"type": "intent", "id": "w", "intent": "wait", "params": {"seconds": 6}})
        execution_id = (await sock.reply("w"))["execution_id"]
        await sock.until(of_type("execution.progress", execution_id))
        redis.stop()
        await asyncio.sleep(2.5)
        redis.start()
        await sock.until(of_type("execution.completed", execution_id), timeout=20)
        mine = [e for e in sock.events if e["execution_id"] == execution_id]
        assert [e["type"] for e in mine].count("execution.progress") == 6
        assert_exactly_once(sock.events)
        await sock.close()
        await http.aclose()
    finally:
        redis.stop()


async def test_200_clients_each_running_5_executions_across_replicas(cluster) -> None:
    runtimes = [cluster.runtime("runtime-a"), cluster.runtime("runtime-b")]
    experiences = [cluster.experience("experience-a", runtimes[0]), cluster.experience("experience-b", runtimes[1])]
    password = cluster.env["INTENTD_ADMIN_PASSWORD"]
    async with httpx.AsyncClient(base_url=experiences[0].url, timeout=30) as http:
        auth = await login(http, ADMIN, password)
        sessions = await asyncio.gather(*(new_session(http, auth) for _ in range(200)))

    async def client(index: int, session: Session) -> tuple[list[str], list[dict]]:
        experience = experiences[index % 2]
        sock = await Sock.open(experience.ws_url, token=session.session_token)
        ids = []
        for k in range(5):
            await sock.send({"type": "intent", "id": k, "intent": "echo", "params": {"n": k, "client": index}})
            reply = await sock.reply(k, timeout=60)
            assert reply["type"] == "ack", reply
            ids.append(reply["execution_id"])
        for execution_id in ids:
            if not any(e["type"] == "execution.completed" and e["execution_id"] == execution_id for e in sock.events):
                await sock.until(of_type("execution.completed", execution_id), timeout=120)
        await sock.close()
        return ids, sock.events

    results = await asyncio.gather(*(client(i, s) for i, s in enumerate(sessions)))
    all_ids = [execution_id for ids, _ in results for execution_id in ids]
    assert len(set(all_ids)) == 1000
    for ids, events in results:
        assert seqs(events) == list(range(1, len(events) + 1)), "every event exactly once, in order"
        for execution_id in ids:
            types = [e["type"] for e in events if e["execution_id"] == execution_id]
            assert types == ["execution.accepted", "execution.started", "execution.completed"], types


async def test_the_sdk_resumes_on_experience_b_when_experience_a_is_killed(cluster) -> None:
    from intentd.client import AsyncClient

    runtime = cluster.runtime("runtime-a")
    experience_a = cluster.experience("experience-a", runtime)
    experience_b = cluster.experience("experience-b", runtime)
    async with AsyncClient([experience_a.url, experience_b.url]) as client:
        await client.login(ADMIN, cluster.env["INTENTD_ADMIN_PASSWORD"])
        await client.create_session()
        async with await client.connect_agent() as sock:
            ack = await sock.submit("wait", {"seconds": 5})
            execution_id = ack["execution_id"]
            received: list[dict] = []
            killed = False
            async for event in sock:
                received.append(event)
                if event["type"] == "execution.progress" and not killed:
                    experience_a.kill9()  # mid-stream: the SDK must go on on B
                    killed = True
                if event["type"] == "execution.completed" and event["execution_id"] == execution_id:
                    break
            assert killed and sock.reconnects >= 1
    numbers = [event["seq"] for event in received]
    assert numbers == list(range(1, len(numbers) + 1)), f"every seq exactly once, in order: {numbers}"
    progress = [e for e in received if e["type"] == "execution.progress"]
    assert len(progress) == 5


async def test_an_experience_spreads_submissions_over_the_runtime_urls_and_skips_a_dead_one(cluster) -> None:
    first, second = cluster.runtime("rt-a"), cluster.runtime("rt-b")
    dead = f"http://127.0.0.1:{free_port()}"
    experience = cluster.experience("exp", first, INTENTD_RUNTIME_URL=f"{dead},{first.url},{second.url}")
    async with httpx.AsyncClient(base_url=experience.url, timeout=15) as http:
        auth = await login(http, "admin@example.com", cluster.env["INTENTD_ADMIN_PASSWORD"])
        session = await new_session(http, auth)
        made = []
        for i in range(6):
            submitted = await http.post("/api/intent/submit", headers=session.headers,
                                        json={"intent": "wait", "params": {"seconds": 3}})
            assert submitted.status_code == 202, submitted.text
            made.append(submitted.json()["execution_id"])
        executors = {executor_of(cluster.env["INTENTD_DATABASE_URL"], execution_id) for execution_id in made}
        assert None not in executors and len(executors) == 2, executors  # both replicas run some
        deadline = time.monotonic() + 30
        for execution_id in made:
            while (execution := (await http.get(f"/api/intent/executions/{execution_id}",
                                                 headers=session.headers)).json())["status"] != "completed":
                assert time.monotonic() < deadline, execution
                await asyncio.sleep(0.2)
