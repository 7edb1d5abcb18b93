"""An agent backed by any OpenAI-compatible chat-completions endpoint.

Each model call is one durable step (``llm.<round>``): its deltas are emitted
as ``agent.delta`` while the answer streams in, and its result (text and tool
calls) is checkpointed, so after a crash a completed call is not repeated. The
model's tool calls become child executions of the intents they name; their
outcomes go back to the model until it answers without calling a tool.
"""

from __future__ import annotations

import asyncio
import json
import re
import weakref
from dataclasses import dataclass
from typing import Any

import httpx

from intentd.agents.base import Turn
from intentd.runtime.context import IntentError

MAX_TOOL_ROUNDS = 8
CALL_ATTEMPTS = 3
RETRY_INTERVAL = 0.5  # seconds before the second attempt, doubling after
SYSTEM_PROMPT = (
    "You are the agent of an intentd session. You can run intents through the tools you are given; "
    "call a tool when the user asks for something a tool does, then answer briefly using its result. "
    "A tool result is JSON {status, result, error}."
)
_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=30.0, pool=30.0)
_TOOL_NAME = re.compile(r"[^a-zA-Z0-9_-]")

# One client (one connection pool) per event loop, shared by every turn of the process.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()


def shared_client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = _clients[loop] = httpx.AsyncClient(timeout=_TIMEOUT)
    return client


def tool_name(intent: str) -> str:
    """OpenAI tool names allow [a-zA-Z0-9_-]{1,64}: dots become double underscores."""
    return _TOOL_NAME.sub("_", intent.replace(".", "__"))[:64]


def build_tools(catalog: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The ``tools`` of a request and the map from tool name back to intent name."""
    tools: list[dict[str, Any]] = []
    intents: dict[str, str] = {}
    for entry in catalog:
        name = tool_name(entry["name"])
        if name in intents:  # two intent names that collapse to one tool name: keep the first
            continue
        intents[name] = entry["name"]
        schema = dict(entry.get("params_schema") or {})
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        description = entry.get("description") or entry["name"]
        if entry.get("examples"):
            description += " (e.g. " + "; ".join(entry["examples"][:3]) + ")"
        tools.append({"type": "function", "function": {"name": name, "description": description, "parameters": schema}})
    return tools, intents


@dataclass(frozen=True)
class LLMSettings:
    base_url: str
    api_key: str | None
    model: str


class LLMAgent:
    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings

    async def respond(self, turn: Turn) -> None:
        tools, intents = build_tools(turn.ctx.intents())
        system = SYSTEM_PROMPT
        context = await turn.ctx.session_context()
        if context:
            system += "\nSession context (JSON): " + json.dumps(context, ensure_ascii=False, default=str)
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": system},
            {"role": "user", "content": turn.text},
        ]
        for round_number in range(MAX_TOOL_ROUNDS):

            async def call_model() -> dict[str, Any]:
                return await self._complete(turn, messages, tools)

            # One attempt: a retried stream would re-emit its deltas under the
            # same event numbers; _complete retries what is safe to retry.
            reply = await turn.ctx.step(f"llm.{round_number}", call_model, retries=1)
            turn.record(reply["content"])
            if not reply["tool_calls"]:
                return
            messages.append(
                {
                    "role": "assistant",
                    "content": reply["content"] or None,
                    "tool_calls": [
                        {
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["name"], "arguments": call["arguments"]},
                        }
                        for call in reply["tool_calls"]
                    ],
                }
            )
            for call in reply["tool_calls"]:
                outcome = await self._run_tool(turn, intents, call)
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call["id"],
                        "content": json.dumps(outcome, ensure_ascii=False, default=str),
                    }
                )
        await turn.say(f"(I stopped after {MAX_TOOL_ROUNDS} rounds of tool calls.)")

    async def _run_tool(self, turn: Turn, intents: dict[str, str], call: dict[str, Any]) -> dict[str, Any]:
        intent = intents.get(call["name"])
        if intent is None:
            return {
                "status": "failed",
                "result": None,
                "error": {"code": "unknown_intent", "message": f"no tool {call['name']!r}"},
            }
        try:
            params = json.loads(call["arguments"] or "{}")
        except ValueError as exc:
            return {"status": "failed", "result": None, "error": {"code": "malformed_json", "message": str(exc)}}
        if not isinstance(params, dict):
            return {
                "status": "failed",
                "result": None,
                "error": {"code": "invalid_params", "message": "arguments must be an object"},
            }
        errors = turn.ctx.validate(intent, params)
        if errors:
            return {
                "status": "failed",
                "result": None,
                "error": {"code": "invalid_params", "message": "invalid arguments", "errors": errors},
            }
        execution_id, outcome = await turn.run_intent(intent, params)
        return {**outcome, "execution_id": execution_id}

    async def _complete(
        self, turn: Turn, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """One model call: emits deltas, returns {content, tool_calls}.

        A call that fails before anything was streamed (unreachable, 429, 5xx)
        is tried again; one that fails midway is not, since what it already
        streamed cannot be taken back.
        """
        attempt = 1
        while True:
            try:
                return await self._stream(turn, messages, tools)
            except _NothingStreamed as exc:
                if attempt >= CALL_ATTEMPTS:
                    raise IntentError(exc.code, exc.message) from None
            await asyncio.sleep(RETRY_INTERVAL * 2 ** (attempt - 1))
            attempt += 1

    async def _stream(self, turn: Turn, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.settings.model, "messages": messages, "stream": True}
        if tools:
            body["tools"] = tools
        headers = {"Authorization": f"Bearer {self.settings.api_key}"} if self.settings.api_key else {}
        url = self.settings.base_url.rstrip("/") + "/chat/completions"
        # a new round's text starts on its own line after what earlier rounds said
        separator = "\n" if turn.reply and not turn.reply.endswith("\n") else ""
        content: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        try:
            async with shared_client().stream("POST", url, json=body, headers=headers) as response:
                if response.status_code != 200:
                    detail = (await response.aread()).decode("utf-8", "replace")[:500]
                    message = f"the model endpoint answered {response.status_code}: {detail}"
                    if response.status_code == 429 or response.status_code >= 500:
                        raise _NothingStreamed("llm_error", message)
                    raise IntentError("llm_error", message)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if chunk.get("error"):
                        raise IntentError("llm_error", f"the model endpoint failed: {chunk['error']}")
                    for choice in chunk.get("choices") or []:
                        if choice.get("index", 0) != 0:
                            continue
                        delta = choice.get("delta") or {}
                        text = delta.get("content")
                        if text:
                            if not content and separator:
                                text = separator + text
                            content.append(text)
                            await turn.emit_delta(text)
                        for part in delta.get("tool_calls") or []:
                            call = calls.setdefault(part.get("index", 0), {"id": "", "name": "", "arguments": ""})
                            function = part.get("function") or {}
                            call["id"] = part.get("id") or call["id"]
                            call["name"] += function.get("name") or ""
                            call["arguments"] += function.get("arguments") or ""
        except httpx.HTTPError as exc:
            message = f"cannot reach the model endpoint: {exc.__class__.__name__}"
            if not content and not calls:
                raise _NothingStreamed("llm_unavailable", message) from exc
            raise IntentError("llm_unavailable", message) from exc
        except ValueError as exc:
            raise IntentError("llm_error", f"the model endpoint sent malformed JSON: {exc}") from exc
        tool_calls = [{**call, "id": call["id"] or f"call_{index}"} for index, call in sorted(calls.items())]
        return {"content": "".join(content), "tool_calls": tool_calls}


class _NothingStreamed(Exception):
    """A failed call that streamed nothing yet, so trying again is invisible to the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
