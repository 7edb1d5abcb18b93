"""The agent interface: an agent answers one ``Turn`` of a conversation.

A ``Turn`` wraps the turn execution's context: what the agent says is streamed
as ``agent.delta`` events and collected for the final ``agent.message``; the
intents it runs are child executions whose ids the final message lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict


class ChildOutcome(TypedDict):
    status: str
    result: Any
    error: dict[str, Any] | None


class ChildHandle(Protocol):
    execution_id: str

    async def result(self) -> ChildOutcome: ...


class AgentContext(Protocol):
    """The part of the runtime's IntentContext that agents use."""

    execution_id: str
    session_id: str | None

    async def step(self, name: str, fn: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def emit(self, type: str, data: dict[str, Any]) -> None: ...

    async def start_child(self, intent: str, params: dict[str, Any]) -> ChildHandle: ...

    def intents(self) -> list[dict[str, Any]]: ...

    def validate(self, intent: str, params: dict[str, Any]) -> list[Any] | None: ...

    async def session_context(self) -> dict[str, Any]: ...

    async def raise_if_cancelled(self) -> None: ...


@dataclass
class Turn:
    """One user message being answered."""

    ctx: AgentContext
    text: str
    turn_id: str
    executions: list[str] = field(default_factory=list)
    _said: list[str] = field(default_factory=list)

    @property
    def reply(self) -> str:
        """Everything said in this turn, for the final ``agent.message``."""
        return "".join(self._said)

    async def say_delta(self, text: str) -> None:
        """Stream a piece of the reply and keep it for the final message."""
        if not text:
            return
        await self.emit_delta(text)
        self.record(text)

    async def say(self, line: str) -> None:
        """Say one line (a newline separates it from what comes next)."""
        await self.say_delta(("\n" if self._said and not self._said[-1].endswith("\n") else "") + line)

    async def emit_delta(self, text: str) -> None:
        """Stream text without recording it: for use inside a durable step, whose
        return value (not its side effects) survives a recovery replay, so the
        caller records the step's result with ``record``."""
        await self.ctx.emit("agent.delta", {"text": text, "turn_id": self.turn_id})

    def record(self, text: str) -> None:
        self._said.append(text)

    async def run_intent(self, intent: str, params: dict[str, Any]) -> tuple[str, ChildOutcome]:
        """Run ``intent`` as a child execution and wait for its outcome.

        A cancelled turn cancels its children; it then ends as cancelled too
        rather than carry on as if the user still wanted an answer.
        """
        handle = await self.ctx.start_child(intent, params)
        self.executions.append(handle.execution_id)
        outcome = await handle.result()
        await self.ctx.raise_if_cancelled()
        return handle.execution_id, outcome


class Agent(Protocol):
    async def respond(self, turn: Turn) -> None: ...
