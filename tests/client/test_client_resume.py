"""Reconnect and resume across a crash (kill -9) and a graceful restart of `intentd up`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from harness import UpServer

from intentd.client import AsyncClient, Backoff

DEADLINE = 60.0


@pytest.mark.parametrize("stop", ["kill9", "terminate"])
async def test_socket_resumes_with_every_seq_exactly_once(up_server: Callable[..., UpServer], stop: str) -> None:
    server = up_server()
    async with AsyncClient(server.url) as client:
        await client.login(server.admin_email, server.admin_password)
        await client.create_session()
        sock = await client.connect_agent(after_seq=0, backoff=Backoff(initial=0.1, maximum=1.0))
        ack = await sock.submit("wait", {"seconds": 4})
        wait_id = ack["execution_id"]
        received: list[dict[str, Any]] = []
        async with asyncio.timeout(DEADLINE):
            async for event in sock:
                received.append(event)
                if event["type"] == "execution.progress":
                    break  # mid-stream: the server goes down now
            # the server dies (or stops) while the socket stays open on the client side
            await asyncio.to_thread(server.kill9 if stop == "kill9" else server.terminate)
            # a request made while the server is down waits for the reconnect
            echo = asyncio.create_task(sock.submit("echo", {"sent": "while down"}))
            await asyncio.to_thread(server.start)
            echo_id = (await echo)["execution_id"]
            unfinished = {wait_id, echo_id}
            async for event in sock:
                received.append(event)
                if event["type"] in ("execution.completed", "execution.failed", "execution.cancelled"):
                    unfinished.discard(event["execution_id"])
                    if not unfinished:
                        break
        assert sock.reconnects >= 1
        await sock.close()

        seqs = [event["seq"] for event in received]
        assert seqs == list(range(1, len(seqs) + 1)), "every seq exactly once, in order"
        outcomes = {e["execution_id"]: e["data"] for e in received if e["type"] == "execution.completed"}
        assert outcomes == {wait_id: {"result": {"waited": 4.0}}, echo_id: {"result": {"sent": "while down"}}}
        # the socket saw exactly what the session's log holds
        log = await client.events(after_seq=0)
        assert [e["seq"] for e in log["items"]][: len(seqs)] == seqs
        assert [(e["type"], e["execution_id"]) for e in log["items"][: len(seqs)]] == [
            (e["type"], e["execution_id"]) for e in received
        ]
