"""The LLM agent against a local server speaking OpenAI's streaming chat-completions protocol.

The fake endpoint runs in the test's event loop (Starlette on uvicorn, a real
HTTP server on a free port); `intentd up` runs with INTENTD_AGENT=llm pointed
at it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from harness import LOCALHOST, UpServer, free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from intentd.client import AsyncClient

DEADLINE = 30.0
API_KEY = "test-llm-key"


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "model": "test-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return f"data: {json.dumps(body)}\n\n"


@dataclass
class FakeLLM:
    """Round 1: says two pieces, then calls a tool (text.stats by default); round 2: answers from its result."""

    fail_with: int | None = None
    tool: str = "text__stats"
    arguments: tuple[str, ...] = ('{"text": "one two', ' three four"}')
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    first_delta_seen: asyncio.Event = field(default_factory=asyncio.Event)
    released_by_client: bool = False

    async def completions(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if self.fail_with is not None:
            return JSONResponse({"error": {"message": "model overloaded"}}, status_code=self.fail_with)
        tool_messages = [m for m in body["messages"] if m["role"] == "tool"]
        stream = self._answer(tool_messages) if tool_messages else self._call_tool()
        return StreamingResponse(stream, media_type="text/event-stream")

    async def _call_tool(self) -> AsyncIterator[str]:
        yield chunk({"role": "assistant", "content": "Let me count "})
        # the rest is held back until the client has seen the first piece: proof of streaming
        try:
            await asyncio.wait_for(self.first_delta_seen.wait(), DEADLINE)
            self.released_by_client = True
        except TimeoutError:
            pass
        yield chunk({"content": "the words."})
        call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": self.tool, "arguments": ""}}
        yield chunk({"tool_calls": [call]})
        for part in self.arguments:  # arguments arrive in pieces, as real endpoints send them
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
        yield chunk({}, "tool_calls")
        yield "data: [DONE]\n\n"

    async def _answer(self, tool_messages: list[dict[str, Any]]) -> AsyncIterator[str]:
        result = json.loads(tool_messages[-1]["content"])["result"]
        if self.tool == "text__stats":
            yield chunk({"role": "assistant", "content": "There are "})
            yield chunk({"content": f"{result['words']} words."})
        else:
            yield chunk({"role": "assistant", "content": "Done: "})
            yield chunk({"content": json.dumps(result)})
        yield chunk({}, "stop")
        yield "data: [DONE]\n\n"


@pytest.fixture
async def fake_llm() -> AsyncIterator[tuple[FakeLLM, str]]:
    llm = FakeLLM()
    app = Starlette(routes=[Route("/v1/chat/completions", llm.completions, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=LOCALHOST, port=port, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    async with asyncio.timeout(DEADLINE):
        while not server.started:
            await asyncio.sleep(0.02)
    yield llm, f"http://{LOCALHOST}:{port}/v1"
    server.should_exit = True
    await serving


def llm_server(up_server: Callable[..., UpServer], base_url: str) -> UpServer:
    return up_server(
        env={
            "INTENTD_AGENT": "llm",
            "INTENTD_LLM_BASE_URL": base_url,
            "INTENTD_LLM_API_KEY": API_KEY,
            "INTENTD_LLM_MODEL": "test-model",
        }
    )


async def test_llm_agent_streams_and_runs_tool_calls(
    up_server: Callable[..., UpServer], fake_llm: tuple[FakeLLM, str]
) -> None:
    llm, base_url = fake_llm
    server = await asyncio.to_thread(llm_server, up_server, base_url)
    events: list[dict[str, Any]] = []
    async with AsyncClient(server.url) as client:
        await client.login(server.admin_email, server.admin_password)
        await client.create_session()
        async with await client.connect_agent() as sock:
            ack = await sock.send_message("how many words in 'one two three four'?")
            async with asyncio.timeout(DEADLINE):
                async for event in sock:
                    events.append(event)
                    if event["type"] == "agent.delta":
                        llm.first_delta_seen.set()
                    if (
                        event["execution_id"] == ack["execution_id"]
                        and event["type"].startswith("execution.")
                        and (event["type"] not in ("execution.accepted", "execution.started", "execution.progress"))
                    ):
                        break
    turn_id = ack["execution_id"]
    assert events[-1]["type"] == "execution.completed", events[-1]
    assert llm.released_by_client, "the first delta reached the client while the model was still answering"

    deltas = [e["data"]["text"] for e in events if e["type"] == "agent.delta"]
    assert deltas == ["Let me count ", "the words.", "\nThere are ", "4 words."]
    [message] = [e["data"] for e in events if e["type"] == "agent.message"]
    assert message["text"] == "Let me count the words.\nThere are 4 words."
    assert message["turn_id"] == turn_id
    [child_id] = message["executions"]
    accepted = next(e for e in events if e["type"] == "execution.accepted" and e["execution_id"] == child_id)
    assert accepted["data"] == {"intent": "text.stats", "params": {"text": "one two three four"}}

    first, second = llm.requests
    assert first["model"] == "test-model" and first["stream"] is True
    assert llm.headers[0]["authorization"] == f"Bearer {API_KEY}"
    tools = {tool["function"]["name"]: tool["function"] for tool in first["tools"]}
    assert {"text__stats", "wait", "echo"} <= set(tools)
    assert "agent__turn" not in tools
    assert tools["text__stats"]["parameters"]["properties"]["text"]["type"] == "string"
    assert first["messages"][-1] == {"role": "user", "content": "how many words in 'one two three four'?"}
    assistant, tool = second["messages"][-2:]
    assert assistant["tool_calls"][0]["id"] == "call_1"
    assert assistant["tool_calls"][0]["function"]["name"] == "text__stats"
    assert tool["role"] == "tool" and tool["tool_call_id"] == "call_1"
    outcome = json.loads(tool["content"])
    assert (outcome["status"], outcome["execution_id"], outcome["result"]["words"]) == ("completed", child_id, 4)


@pytest.mark.parametrize(("status", "calls"), [(503, 3), (400, 1)])
async def test_llm_endpoint_errors_fail_the_turn_with_a_code(
    up_server: Callable[..., UpServer], fake_llm: tuple[FakeLLM, str], status: int, calls: int
) -> None:
    """A server error is tried three times in all, a refused request once."""
    llm, base_url = fake_llm
    llm.fail_with = status
    server = await asyncio.to_thread(llm_server, up_server, base_url)
    async with AsyncClient(server.url) as client:
        await client.login(server.admin_email, server.admin_password)
        await client.create_session()
        async with await client.connect_agent() as sock:
            ack = await sock.send_message("hello")
            outcome = await sock.wait_for_execution(ack["execution_id"], timeout=DEADLINE)
    assert outcome["status"] == "failed"
    assert outcome["error"]["code"] == "llm_error"
    assert f"answered {status}" in outcome["error"]["message"]
    assert len(llm.requests) == calls


async def test_a_completed_model_call_is_not_repeated_after_a_crash(
    up_server: Callable[..., UpServer], fake_llm: tuple[FakeLLM, str]
) -> None:
    llm, base_url = fake_llm
    llm.tool, llm.arguments = "wait", ('{"seconds"', ": 4}")
    llm.first_delta_seen.set()  # nothing to hold back in this test
    server = await asyncio.to_thread(llm_server, up_server, base_url)
    async with AsyncClient(server.url) as client:
        await client.login(server.admin_email, server.admin_password)
        await client.create_session()
        sock = await client.connect_agent()
        ack = await sock.send_message("wait four seconds please")
        async with asyncio.timeout(DEADLINE):
            async for event in sock:
                if event["type"] == "execution.progress":
                    break  # the model has answered once and its tool call is running
        assert len(llm.requests) == 1
        await asyncio.to_thread(server.kill9)
        await asyncio.to_thread(server.start)
        outcome = await sock.wait_for_execution(ack["execution_id"], timeout=DEADLINE)
        await sock.close()
        log = (await client.events(after_seq=0))["items"]
    assert outcome["status"] == "completed", outcome
    assert outcome["result"]["text"] == 'Let me count the words.\nDone: {"waited": 4.0}'
    assert len(llm.requests) == 2, "the first call was checkpointed, only the second one ran after the restart"
    deltas = [e["data"]["text"] for e in log if e["type"] == "agent.delta"]
    assert deltas == ["Let me count ", "the words.", "\nDone: ", '{"waited": 4.0}']
