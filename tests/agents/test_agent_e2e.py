"""The default agent end to end: `intentd up` in a subprocess, the SDK over real sockets."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import UpServer

from intentd.client import AgentSocket, AsyncClient

HERE = Path(__file__).parent
TERMINAL = {"execution.completed", "execution.failed", "execution.cancelled"}
DEADLINE = 30.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpServer]:
    # agent_demo_intents adds two intents that plain language cannot tell apart
    up = UpServer(
        tmp_path_factory.mktemp("agent-e2e") / "up",
        env={
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
            "INTENTD_INTENT_MODULES": "agent_demo_intents",
        },
    )
    up.start()
    yield up
    up.stop()


async def until_finished(sock: AgentSocket, execution_id: str) -> list[dict[str, Any]]:
    """Every event up to and including the end of ``execution_id``."""
    events = []
    async with asyncio.timeout(DEADLINE):
        async for event in sock:
            events.append(event)
            if event["type"] in TERMINAL and event["execution_id"] == execution_id:
                return events
    raise AssertionError(f"the socket ended before {execution_id} finished: {events}")


async def converse(server: UpServer, text: str) -> tuple[AsyncClient, str, list[dict[str, Any]]]:
    """Say ``text`` in a new session; (client, turn id, the session's events up to the turn's end)."""
    client = AsyncClient(server.url)
    await client.login(server.admin_email, server.admin_password)
    await client.create_session()
    async with await client.connect_agent() as sock:
        ack = await sock.send_message(text)
        events = await until_finished(sock, ack["execution_id"])
    return client, ack["execution_id"], events


def the_message(events: list[dict[str, Any]], turn_id: str) -> dict[str, Any]:
    [message] = [e for e in events if e["type"] == "agent.message"]
    assert message["execution_id"] == turn_id
    assert message["data"]["turn_id"] == turn_id
    return message["data"]


def children(events: list[dict[str, Any]], turn_id: str) -> dict[str, list[dict[str, Any]]]:
    """Events of the executions other than the turn, by execution id."""
    found: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        if event["execution_id"] != turn_id:
            found.setdefault(event["execution_id"], []).append(event)
    return found


async def test_help_lists_every_user_visible_intent(server: UpServer) -> None:
    client, turn_id, events = await converse(server, "/help")
    async with client:
        catalog = await client.intent_types()
    message = the_message(events, turn_id)
    for entry in catalog:
        if entry["name"] != "agent.turn":
            assert f"/{entry['name']}: {entry['description']}" in message["text"]
    assert message["executions"] == []
    deltas = [e for e in events if e["type"] == "agent.delta"]
    assert deltas and all(e["data"]["turn_id"] == turn_id for e in deltas)
    assert "".join(e["data"]["text"] for e in deltas) == message["text"]
    # deltas stream before the final message, which comes before the turn's end
    kinds = [e["type"] for e in events if e["execution_id"] == turn_id]
    assert kinds.index("agent.message") > max(i for i, k in enumerate(kinds) if k == "agent.delta")
    assert kinds[-1] == "execution.completed"


async def test_slash_command_runs_the_intent_with_the_rest_of_the_line(server: UpServer) -> None:
    client, turn_id, events = await converse(server, "/text.stats hello world")
    message = the_message(events, turn_id)
    [child_id] = message["executions"]
    child_events = children(events, turn_id)[child_id]
    assert child_events[0]["type"] == "execution.accepted"
    assert child_events[0]["data"] == {"intent": "text.stats", "params": {"text": "hello world"}}
    assert child_events[-1]["type"] == "execution.completed"
    assert child_events[-1]["data"]["result"]["words"] == 2
    assert "`text.stats` completed: words: 2" in message["text"]
    async with client:
        child = await client.execution(child_id)
    assert child["parent_id"] == turn_id
    assert child["status"] == "completed"


async def test_plain_language_request_runs_text_stats(server: UpServer) -> None:
    _, turn_id, events = await converse(server, "count the words in: the quick brown fox")
    message = the_message(events, turn_id)
    assert "That sounds like `text.stats`" in message["text"]
    [child_id] = message["executions"]
    child_events = children(events, turn_id)[child_id]
    assert child_events[0]["data"] == {"intent": "text.stats", "params": {"text": "the quick brown fox"}}
    assert child_events[-1]["data"]["result"]["words"] == 4
    assert "words: 4" in message["text"]


async def test_wait_request_streams_progress_then_reports(server: UpServer) -> None:
    _, turn_id, events = await converse(server, "please wait 2 seconds")
    message = the_message(events, turn_id)
    [child_id] = message["executions"]
    child_events = children(events, turn_id)[child_id]
    assert child_events[0]["data"] == {"intent": "wait", "params": {"seconds": 2}}
    progress = [e["data"]["fraction"] for e in child_events if e["type"] == "execution.progress"]
    assert progress and progress[-1] == 1.0
    assert "`wait` completed: waited: 2" in message["text"]


async def test_ambiguous_request_makes_the_agent_ask(server: UpServer) -> None:
    _, turn_id, events = await converse(server, "say hello")
    message = the_message(events, turn_id)
    assert "Which one do you mean?" in message["text"]
    assert "/demo.greet_en: Say hello in English" in message["text"]
    assert "/demo.greet_fr: Say hello in French" in message["text"]
    assert message["executions"] == []
    assert children(events, turn_id) == {}


async def test_invalid_parameters_are_explained_not_run(server: UpServer) -> None:
    _, turn_id, events = await converse(server, "/wait seconds=-1")
    message = the_message(events, turn_id)
    assert "I can't run `wait`" in message["text"]
    assert "greater than or equal to 0" in message["text"]
    assert children(events, turn_id) == {}
    assert events[-1]["type"] == "execution.completed"


async def test_cancelling_a_turn_cancels_its_intent_and_the_turn(server: UpServer) -> None:
    async with AsyncClient(server.url) as client:
        await client.login(server.admin_email, server.admin_password)
        await client.create_session()
        async with await client.connect_agent() as sock:
            turn_id = (await sock.send_message("wait 60 seconds"))["execution_id"]
            async with asyncio.timeout(DEADLINE):
                async for event in sock:
                    if event["type"] == "execution.started" and event["execution_id"] != turn_id:
                        child_id = event["execution_id"]
                        break
            await sock.cancel(turn_id)
            turn = await sock.wait_for_execution(turn_id, timeout=DEADLINE)
            child = await sock.wait_for_execution(child_id, timeout=DEADLINE)
    assert (turn["status"], child["status"]) == ("cancelled", "cancelled")
