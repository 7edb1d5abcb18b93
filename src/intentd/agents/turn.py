"""The ``agent.turn`` intent: one user message answered by the configured agent.

The agent is chosen by ``INTENTD_AGENT`` (``default`` or ``llm``). It streams
``agent.delta`` events; the turn ends with one ``agent.message`` {text,
turn_id, executions} whose turn_id is this execution's id.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import BaseModel, Field

from intentd.agents.base import Agent, Turn
from intentd.agents.default import DefaultAgent
from intentd.agents.llm import LLMAgent, LLMSettings
from intentd.config import load_settings
from intentd.runtime.context import IntentContext, IntentError
from intentd.runtime.registry import intent


class TurnParams(BaseModel):
    text: str = Field(min_length=1, max_length=10_000, description="What the user said")


class TurnResult(BaseModel):
    text: str
    turn_id: str
    executions: list[str]


@lru_cache(maxsize=1)
def configured_agent() -> Agent:
    # Agents are loaded by name like any intent module, so they read the
    # process's settings themselves rather than receive them from the runtime.
    settings = load_settings()
    if settings.agent == "default":
        return DefaultAgent()
    if settings.agent == "llm":
        if not settings.llm_base_url:
            raise IntentError("agent_misconfigured", "INTENTD_AGENT=llm needs INTENTD_LLM_BASE_URL")
        return LLMAgent(LLMSettings(settings.llm_base_url, settings.llm_api_key, settings.llm_model))
    raise IntentError("agent_misconfigured", f"unknown INTENTD_AGENT {settings.agent!r}: use default or llm")


@intent("agent.turn", description="One conversational turn with the session's agent", hidden=True)
async def agent_turn(ctx: IntentContext, params: TurnParams) -> TurnResult:
    turn = Turn(ctx=ctx, text=params.text, turn_id=ctx.execution_id)
    await configured_agent().respond(turn)
    await ctx.emit("agent.message", {"text": turn.reply, "turn_id": turn.turn_id, "executions": turn.executions})
    return TurnResult(text=turn.reply, turn_id=turn.turn_id, executions=turn.executions)
