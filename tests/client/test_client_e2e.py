"""The SDK against a real `intentd up` subprocess: REST calls and the agent socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from harness import UpServer, free_port

from intentd.client import AgentSocket, AsyncClient, IntentdError, SessionRevoked

DEADLINE = 30.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpServer]:
    up = UpServer(tmp_path_factory.mktemp("client-e2e") / "up")
    up.start()
    yield up
    up.stop()


@pytest.fixture
async def client(server: UpServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.url) as c:
        await c.login(server.admin_email, server.admin_password)
        await c.create_session(metadata={"test": "client"})
        yield c


async def next_event(sock: AgentSocket, kind: str, execution_id: str | None = None) -> dict[str, Any]:
    async with asyncio.timeout(DEADLINE):
        async for event in sock:
            if event["type"] == kind and execution_id in (None, event.get("execution_id")):
                return event
    raise AssertionError("the socket ended")


async def test_wrong_password_raises_with_the_problem_code(server: UpServer) -> None:
    async with AsyncClient(server.url) as c:
        with pytest.raises(IntentdError) as raised:
            await c.login(server.admin_email, "not the password")
    assert raised.value.status == 401
    assert raised.value.code == "invalid_credentials"
    assert raised.value.problem["status"] == 401


async def test_me_and_refresh(server: UpServer, client: AsyncClient) -> None:
    me = await client.me()
    assert me["email"] == server.admin_email
    first = client.refresh_token
    await client.refresh()
    assert client.refresh_token != first
    assert (await client.me())["id"] == me["id"]


async def test_sessions_and_context(client: AsyncClient) -> None:
    session = await client.get_session()
    assert session["session_id"] == client.session_id
    assert session["metadata"] == {"test": "client"}
    assert session["active"] is True
    listed = await client.list_sessions(active=True)
    assert client.session_id in [s["session_id"] for s in listed]
    assert await client.patch_context({"lang": "en", "tz": "UTC"}) == {"lang": "en", "tz": "UTC"}
    assert await client.patch_context({"tz": None}) == {"lang": "en"}
    assert await client.get_context() == {"lang": "en"}


async def test_submit_status_events_and_idempotency(client: AsyncClient) -> None:
    submitted = await client.submit("echo", {"message": "hi"}, idempotency_key="k-1")
    assert submitted["duplicate"] is False
    again = await client.submit("echo", {"message": "hi"}, idempotency_key="k-1")
    assert again == {**again, "execution_id": submitted["execution_id"], "duplicate": True}
    with pytest.raises(IntentdError) as raised:
        await client.submit("echo", {"message": "other"}, idempotency_key="k-1")
    assert (raised.value.status, raised.value.code) == (409, "idempotency_conflict")

    finished = await client.wait_for_execution(submitted["execution_id"], timeout=DEADLINE)
    assert finished["status"] == "completed"
    assert finished["result"] == {"message": "hi"}
    log = await client.events(after_seq=0)
    seqs = [e["seq"] for e in log["items"]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert log["items"][-1]["type"] == "execution.completed"
    assert (await client.events(after_seq=seqs[-1]))["items"] == []


async def test_submit_errors_carry_stable_codes(client: AsyncClient) -> None:
    with pytest.raises(IntentdError) as unknown:
        await client.submit("no.such.intent", {})
    assert (unknown.value.status, unknown.value.code) == (404, "unknown_intent")
    with pytest.raises(IntentdError) as invalid:
        await client.submit("wait", {"seconds": "soon"})
    assert (invalid.value.status, invalid.value.code) == (422, "invalid_params")
    assert invalid.value.problem["errors"][0]["loc"][-1] == "seconds"


async def test_cancel_over_rest(client: AsyncClient) -> None:
    started = await client.submit("wait", {"seconds": 60})
    await client.cancel(started["execution_id"])
    finished = await client.wait_for_execution(started["execution_id"], timeout=DEADLINE)
    assert finished["status"] == "cancelled"


async def test_intent_types_list_the_catalog(client: AsyncClient) -> None:
    names = {item["name"]: item for item in await client.intent_types()}
    assert {"echo", "wait", "text.stats"} <= set(names)
    assert names["wait"]["params_schema"]["properties"]["seconds"]["type"] == "number"


async def test_requests_fail_over_to_the_next_url(server: UpServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with AsyncClient([dead, server.url]) as c:
        await c.login(server.admin_email, server.admin_password)
        assert c.current_url == server.url
        await c.create_session()
        async with await c.connect_agent() as sock:
            assert sock.session_id == c.session_id


async def test_socket_requests(client: AsyncClient) -> None:
    async with await client.connect_agent() as sock:
        assert sock.session_id == client.session_id
        assert await sock.ping() >= 0

        ack = await sock.submit("echo", {"message": "over the socket"})
        outcome = await sock.wait_for_execution(ack["execution_id"], timeout=DEADLINE)
        assert outcome == {
            "execution_id": ack["execution_id"], "status": "completed",
            "result": {"message": "over the socket"}, "error": None,
        }  # fmt: skip

        with pytest.raises(IntentdError) as raised:
            await sock.submit("wait", {"seconds": -1})
        assert raised.value.code == "invalid_params"

        long = await sock.submit("wait", {"seconds": 60}, idempotency_key="long-wait")
        assert long["duplicate"] is False
        assert (await sock.submit("wait", {"seconds": 60}, idempotency_key="long-wait"))["duplicate"] is True
        await next_event(sock, "execution.started", long["execution_id"])
        await sock.cancel(long["execution_id"])
        assert (await sock.wait_for_execution(long["execution_id"], timeout=DEADLINE))["status"] == "cancelled"
        assert sock.reconnects == 0


async def test_socket_yields_each_seq_once_in_order(client: AsyncClient) -> None:
    for n in range(3):
        await client.wait_for_execution((await client.submit("echo", {"n": n}))["execution_id"], timeout=DEADLINE)
    last = (await client.events())["last_seq"]
    async with await client.connect_agent(after_seq=0) as sock:
        seen = []
        async with asyncio.timeout(DEADLINE):
            async for event in sock:
                seen.append(event["seq"])
                if event["seq"] == last:
                    break
        assert seen == list(range(1, last + 1))
        # resuming from an earlier seq does not yield what was already seen
        await sock.resume(after_seq=0)
        ack = await sock.submit("echo", {"after": "resume"})
        event = await anext(sock)
        assert event["seq"] == last + 1
        assert event["execution_id"] == ack["execution_id"]


async def test_live_only_socket_starts_after_the_current_last_seq(client: AsyncClient) -> None:
    await client.wait_for_execution((await client.submit("echo", {}))["execution_id"], timeout=DEADLINE)
    last = (await client.events())["last_seq"]
    async with await client.connect_agent(after_seq=None) as sock:
        assert sock.last_seq == last
        ack = await sock.submit("echo", {})
        event = await anext(sock)
        assert (event["seq"], event["execution_id"]) == (last + 1, ack["execution_id"])


async def test_read_only_socket_refuses_requests(client: AsyncClient) -> None:
    async with await client.connect_agent(read_only=True) as sock:
        with pytest.raises(IntentdError) as raised:
            await sock.send_message("hello")
        assert raised.value.code == "read_only"
        assert await sock.ping() >= 0


async def test_bad_session_token_is_final(server: UpServer) -> None:
    async with AsyncClient(server.url) as c:
        with pytest.raises(SessionRevoked) as raised:
            await c.connect_agent(session_token="not-a-session-token")
    assert raised.value.close_code == 4401
    assert raised.value.code == "unauthorized"


async def test_revoked_session_stops_the_socket_without_retrying(client: AsyncClient) -> None:
    sock = await client.connect_agent()
    await client.revoke_session()
    with pytest.raises(SessionRevoked) as raised:
        async with asyncio.timeout(5):
            async for _ in sock:
                pass
    assert raised.value.close_code == 4401
    assert sock.reconnects == 0
    with pytest.raises(SessionRevoked):
        await sock.send_message("still there?")
    with pytest.raises(SessionRevoked):
        await client.connect_agent()
    await sock.close()
