"""A parent intent and its child, for the crash-recovery tests of child executions
(``INTENTD_INTENT_MODULES=intents_children``).

The parent pauses with durable sleeps (which resume where they were after a
crash) before it starts its child, between starting it and awaiting its
result, and after reporting that result in an event, so a test can kill the
server while the parent is in a known phase.
Both leave evidence in files under ``dir``, which survives a ``kill -9``: one
line per run of the parent's body and per attempt of the child's step.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel, Field

from intentd.runtime.context import IntentContext
from intentd.runtime.registry import intent


def append_line(path: Path, line: str) -> None:
    with path.open("a") as file:
        file.write(line + "\n")


class ChildParams(BaseModel):
    dir: str
    seconds: float = Field(ge=0, le=60)


class ChildResult(BaseModel):
    token: str
    seconds: float


@intent("test.child", description="A child that works for `seconds` inside one step")
async def child(ctx: IntentContext, params: ChildParams) -> ChildResult:
    folder = Path(params.dir)

    async def work() -> str:
        append_line(folder / "child-step", "entered")
        await asyncio.sleep(params.seconds)
        return ctx.idempotency_key("work")

    token = await ctx.step("work", work)
    await ctx.progress(1.0, "worked")
    return ChildResult(token=token, seconds=params.seconds)


class ParentParams(BaseModel):
    dir: str
    child_seconds: float = Field(ge=0, le=60)
    before: float = Field(default=0, ge=0, le=60)  # durable sleep before the child is started
    between: float = Field(default=0, ge=0, le=60)  # durable sleep between starting and awaiting it
    after: float = Field(default=0, ge=0, le=60)  # durable sleep after reporting its outcome


class ParentResult(BaseModel):
    child_id: str
    child: dict


@intent("test.parent", description="Start a test.child, wait for it, and return its outcome")
async def parent(ctx: IntentContext, params: ParentParams) -> ParentResult:
    folder = Path(params.dir)
    append_line(folder / "parent-body", "ran")
    if params.before:
        await ctx.sleep(params.before)
    handle = await ctx.start_child("test.child", {"dir": params.dir, "seconds": params.child_seconds})
    if params.between:
        await ctx.sleep(params.between)
    outcome = await handle.result()
    await ctx.emit("test.child-outcome", {"child_id": handle.execution_id, "status": outcome["status"]})
    if params.after:
        await ctx.sleep(params.after)
    return ParentResult(child_id=handle.execution_id, child=dict(outcome))
