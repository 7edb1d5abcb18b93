"""IntentContext: what a handler sees of its execution.

Every method is deterministic across crash-recovery replays: anything that
could differ between the first run and a replay (a clock, a cancellation
observed, a child's result) goes through a checkpointed step, and the event
counter ``n`` is restored from the steps it spans, so a replay re-appends the
very same (execution_id, n) events, which the event log ignores.
"""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbos import DBOS
from pydantic import BaseModel, ValidationError

from intentd.problems import field_errors
from intentd.runtime.registry import RetryPolicy

if TYPE_CHECKING:
    from intentd.runtime.engine import Engine, ExecutionRow

_CHILD_NAMESPACE = uuid.UUID("5b8f5f2e-6a4c-4d59-9f0e-2b1c7f3d8a10")


class Cancelled(Exception):
    """The execution was asked to stop; raised at the next cancellation point."""


class IntentError(Exception):
    """A handler's failure with a stable code, reported as ``execution.failed``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ChildHandle:
    execution_id: str
    _ctx: IntentContext

    async def result(self) -> dict[str, Any]:
        """{status, result, error} once the child has finished."""
        return await self._ctx.step(
            f"child-result:{self.execution_id}", self._ctx._engine.wait_finished, self.execution_id
        )


class IntentContext:
    def __init__(self, engine: Engine, row: ExecutionRow, retry: RetryPolicy, *, next_n: int) -> None:
        self._engine = engine
        self._retry = retry
        self._n = next_n
        self._children = 0
        self._compensations: list[tuple[str, Callable[..., Any], Any]] = []
        self.execution_id = row.id
        self.intent = row.intent
        self.tenant_id = row.tenant_id
        self.user_id = row.user_id
        self.session_id = row.session_id
        self.parent_id = row.parent_id

    # -- events -------------------------------------------------------------

    async def _record(self, type: str, data: dict[str, Any], update: dict[str, Any] | None = None) -> None:
        n = self._n
        self._n += 1
        await self._engine.record(self, type, data, n, update or {})

    async def progress(self, fraction: float, message: str = "") -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        await self._record(
            "execution.progress",
            {"fraction": fraction, "message": message},
            {"progress": fraction, "progress_message": message},
        )

    async def emit(self, type: str, data: dict[str, Any]) -> None:
        if type.startswith("execution."):
            raise ValueError("execution.* events are the runtime's own")
        await self._record(type, data)

    # -- steps --------------------------------------------------------------

    async def step(
        self,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        compensate: Callable[[Any], Any] | None = None,
        retries: RetryPolicy | int | None = None,
        **kwargs: Any,
    ) -> Any:
        policy = self._retry if retries is None else retries
        if isinstance(policy, int):
            policy = RetryPolicy(attempts=policy)
        start_n = self._n

        async def run() -> tuple[Any, int]:
            self._n = start_n  # a retried attempt re-emits the same event numbers
            if inspect.iscoroutinefunction(fn):
                value = await fn(*args, **kwargs)
            else:  # a plain function may block: off the event loop
                value = await self._engine.run_blocking(fn, *args, **kwargs)
                if inspect.isawaitable(value):  # a plain function that returned a coroutine
                    value = await value
            return value, self._n

        value, self._n = await DBOS.run_step_async(
            {
                "name": name,
                "retries_allowed": policy.attempts > 1,
                "max_attempts": max(policy.attempts, 1),
                "interval_seconds": policy.interval,
                "backoff_rate": policy.backoff,
            },
            run,
        )
        if compensate is not None:
            self._compensations.append((name, compensate, value))
        return value

    def idempotency_key(self, step: str) -> str:
        """Stable across retries and recovery: hand it to external services."""
        return f"{self.execution_id}:{step}"

    # -- cancellation -------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """Live view, for display; use ``raise_if_cancelled`` to act on it deterministically."""
        return self._engine.is_cancel_requested_locally(self.execution_id)

    async def raise_if_cancelled(self) -> None:
        if await self.step("observe-cancel", self._engine.cancel_requested, self.execution_id, retries=1):
            raise Cancelled()

    async def sleep(self, seconds: float) -> None:
        """A durable sleep: resumes where it was after a crash, ends early on cancel."""
        deadline = await self.step("sleep", _deadline, seconds, retries=1)
        await self._engine.wait_cancel(self.execution_id, deadline - time.time())
        await self.raise_if_cancelled()

    # -- children and catalog -----------------------------------------------

    async def start_child(self, intent: str, params: dict[str, Any]) -> ChildHandle:
        k = self._children
        self._children += 1
        child_id = str(uuid.uuid5(_CHILD_NAMESPACE, f"{self.execution_id}/{k}"))
        await self.step(
            f"start-child:{intent}",
            self._engine.create_child,
            self,
            child_id,
            intent,
            params,
            retries=3,
        )
        await self._engine.enqueue(child_id)  # in the workflow body: DBOS records it as our child
        return ChildHandle(child_id, self)

    def intents(self) -> list[dict[str, Any]]:
        return [spec.describe() for spec in self._engine.registry.specs()]

    def validate(self, intent: str, params: dict[str, Any]) -> list[dict[str, Any]] | None:
        spec = self._engine.registry.get(intent)
        if spec is None:
            return [{"loc": ["intent"], "type": "unknown_intent", "msg": f"unknown intent {intent!r}"}]
        try:
            spec.params_model.model_validate(params)
        except ValidationError as exc:
            return field_errors(exc.errors())
        return None

    async def session_context(self) -> dict[str, Any]:
        if self.session_id is None:
            return {}
        return await self.step("session-context", self._engine.session_context, self.session_id, retries=3)

    async def _compensate(self) -> None:
        """Undo the steps that declared a compensation, newest first."""
        if not self._compensations:
            return
        await self._record(
            "execution.compensating",
            {"steps": [name for name, _, _ in reversed(self._compensations)]},
            {"status": "compensating"},
        )
        while self._compensations:
            name, undo, value = self._compensations.pop()
            await self.step(f"compensate:{name}", undo, value, retries=3)


def _deadline(seconds: float) -> float:
    return time.time() + max(float(seconds), 0.0)


def dump_result(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value

