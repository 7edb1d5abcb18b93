"""Intents that only the runtime tests load (``INTENTD_INTENT_MODULES=intents_for_tests``).

They leave evidence in files under the ``dir`` their params name, because the
evidence must survive the server process (a ``kill -9``) and be readable by
the test: one line per step execution, per attempt, per compensation.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from pathlib import Path

from dbos import DBOS
from dbos import _dbos as dbos_module
from pydantic import BaseModel, Field

from intentd.runtime.context import IntentContext, IntentError
from intentd.runtime.registry import RetryPolicy, intent

FLAKY_RETRY = RetryPolicy(attempts=4, interval=0.2, backoff=3.0)
SLOW_TIMEOUT = 1.0


def append_line(path: Path, line: str) -> int:
    """Append ``line`` to ``path``; returns how many lines the file holds now."""
    with path.open("a") as file:
        file.write(line + "\n")
    return len(path.read_text().splitlines())


# --- retry -------------------------------------------------------------------


class FlakyParams(BaseModel):
    dir: str
    failures: int = Field(ge=0)


class FlakyResult(BaseModel):
    attempts: int


@intent("test.flaky", description="Fail the first `failures` attempts of a step, then succeed", retry=FLAKY_RETRY)
async def flaky(ctx: IntentContext, params: FlakyParams) -> FlakyResult:
    folder = Path(params.dir)
    key = ctx.idempotency_key("call")

    def call() -> int:
        attempt = append_line(folder / "attempts", f"{time.time()!r} {key}")
        if attempt <= params.failures:
            raise RuntimeError(f"attempt {attempt} fails on purpose")
        return attempt

    return FlakyResult(attempts=await ctx.step("call", call))


# --- timeout -----------------------------------------------------------------


class SlowParams(BaseModel):
    seconds: float = Field(ge=0)
    in_step: bool = False  # hang inside a step (a stuck external call) or in the handler


@intent("test.slow", description="Take longer than the 1 s timeout", timeout=SLOW_TIMEOUT)
async def slow(ctx: IntentContext, params: SlowParams) -> FlakyResult:
    if params.in_step:
        await ctx.step("hang", asyncio.sleep, params.seconds)
    else:
        await ctx.sleep(params.seconds)
    return FlakyResult(attempts=1)


# --- compensation (saga) -------------------------------------------------------


class SagaParams(BaseModel):
    dir: str
    steps: int = Field(ge=1, le=10)
    fail: bool = False
    wait: float = 0.0  # after the steps: a cancellable pause


class SagaResult(BaseModel):
    done: list[int]


def _reserve(folder: Path, index: int) -> int:
    append_line(folder / "saga", f"do {index}")
    return index


def _release(folder: Path, index: int) -> None:
    append_line(folder / "saga", f"undo {index}")


@intent("test.saga", description="Run steps with compensations, then fail or wait")
async def saga(ctx: IntentContext, params: SagaParams) -> SagaResult:
    folder = Path(params.dir)
    done = [
        await ctx.step(f"reserve-{i}", _reserve, folder, i, compensate=functools.partial(_release, folder))
        for i in range(params.steps)
    ]
    if params.fail:
        raise IntentError("saga_failed", "failing after the steps on purpose")
    if params.wait:
        await ctx.sleep(params.wait)
    return SagaResult(done=done)


# --- crash recovery -----------------------------------------------------------


class CrashParams(BaseModel):
    dir: str
    pause: float = Field(ge=0, le=60)


class CrashResult(BaseModel):
    steps: list[str]


def _count(folder: Path, name: str) -> str:
    append_line(folder / name, "ran")
    return name


async def _slow_step(folder: Path, pause: float) -> str:
    append_line(folder / "slow", "entered")  # the test kills the process once it sees this
    await asyncio.sleep(pause)
    return "slow"


@intent("test.crashable", description="Steps with a slow one the test kills the process in")
async def crashable(ctx: IntentContext, params: CrashParams) -> CrashResult:
    folder = Path(params.dir)
    ran = [await ctx.step("first", _count, folder, "first")]
    await ctx.emit("test.step", {"name": "first"})

    async def second() -> str:
        await ctx.emit("test.inside", {"name": "second"})  # an event recorded by a step
        return _count(folder, "second")

    ran.append(await ctx.step("second", second))
    await ctx.progress(0.5, "half way")
    ran.append(await ctx.step("slow", _slow_step, folder, params.pause))
    ran.append(await ctx.step("third", _count, folder, "third"))
    await ctx.emit("test.step", {"name": "third"})
    return CrashResult(steps=ran)


# --- children and custom events ------------------------------------------------


class ParentParams(BaseModel):
    child_intent: str
    child_params: dict[str, object]


class ParentResult(BaseModel):
    child_id: str
    child: dict[str, object]


@intent("test.parent", description="Start one child execution and return its outcome")
async def parent(ctx: IntentContext, params: ParentParams) -> ParentResult:
    handle = await ctx.start_child(params.child_intent, params.child_params)
    outcome = await handle.result()
    await ctx.raise_if_cancelled()
    return ParentResult(child_id=handle.execution_id, child=outcome)


class EmitParams(BaseModel):
    count: int = Field(ge=0, le=100)


class EmitResult(BaseModel):
    emitted: int


@intent("test.emitter", description="Emit custom events, some from inside steps")
async def emitter(ctx: IntentContext, params: EmitParams) -> EmitResult:
    for i in range(params.count):
        if i % 2:

            async def inside(i: int = i) -> int:
                await ctx.emit("test.ping", {"i": i, "inside_step": True})
                return i

            await ctx.step(f"emit-{i}", inside)
        else:
            await ctx.emit("test.ping", {"i": i, "inside_step": False})
        await ctx.progress((i + 1) / max(params.count, 1), f"{i + 1} of {params.count}")
    return EmitResult(emitted=params.count)


# --- failures around the handler ------------------------------------------------


class OwnTimeoutParams(BaseModel):
    seconds: float = 0.05


@intent("test.own_timeout", description="A handler whose own wait_for times out; the intent has no timeout")
async def own_timeout(ctx: IntentContext, params: OwnTimeoutParams) -> FlakyResult:
    await asyncio.wait_for(asyncio.sleep(10), params.seconds)
    raise AssertionError("unreachable")


def _refuse_to_undo(_: object) -> None:
    raise RuntimeError("the undo failed too")


@intent("test.bad_undo", description="A failing execution whose compensation fails")
async def bad_undo(ctx: IntentContext, params: OwnTimeoutParams) -> FlakyResult:
    await ctx.step("do", lambda: 1, compensate=_refuse_to_undo, retries=1)
    raise IntentError("failed_on_purpose", "so that the compensation runs")


# --- threads ------------------------------------------------------------------------


class WhereParams(BaseModel):
    pause: float = Field(ge=0, le=5)


class WhereResult(BaseModel):
    thread: str
    workflow_id: str | None
    began: float
    ended: float
    dbos_threads: int
    dbos_synchronous: int | None  # SQLite's PRAGMA synchronous on DBOS's connections; None on PostgreSQL


@intent("test.where", description="Block in a plain-function step; say where it ran and how DBOS is set up")
async def where(ctx: IntentContext, params: WhereParams) -> WhereResult:
    def plain() -> tuple[str, str | None, float, float]:
        began = time.time()
        time.sleep(params.pause)  # blocking, as a plain function may be
        return threading.current_thread().name, DBOS.workflow_id, began, time.time()

    thread, workflow_id, began, ended = await ctx.step("plain", plain)
    dbos_threads = sum(thread.name.startswith("dbos-executor") for thread in threading.enumerate())
    engine = dbos_module._dbos_global_instance._sys_db.engine
    synchronous = None
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            synchronous = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    return WhereResult(thread=thread, workflow_id=workflow_id, began=began, ended=ended, dbos_threads=dbos_threads,
                       dbos_synchronous=synchronous)
