"""Crash recovery of parent/child executions: `kill -9` at every phase of a child, then a restart.

Whatever the moment of the crash (before the parent starts its child, right
after, while the child runs, after the child finished but before the parent
took its result), both executions finish after the restart, each event is
recorded once (n = 0, 1, 2, ... per execution, one gapless seq per session),
and the parent's result carries the child's. The agent's turn (`agent.turn`
running `/wait` as its child) is the case seen failing from the chat; it is
crashed repeatedly around its child's end, with both cores busy to widen the
races, on `intentd serve runtime` and on `intentd up`.
"""

from __future__ import annotations

import secrets
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import IntentdProcess, UpServer
from runtime_support import (
    Runtime,
    assert_event_log,
    create,
    events_of,
    lines,
    runtime_env,
    sqlite_session,
    start_runtime,
    tenant,
    wait_for,
    wait_until,
)

CHILD_INTENTS = "intents_children"
# The id a parent gives its k-th child (intentd.runtime.context), so the test
# can watch a child the parent has not reported yet.
_CHILD_NAMESPACE = uuid.UUID("5b8f5f2e-6a4c-4d59-9f0e-2b1c7f3d8a10")
RECOVERY_DEADLINE = 30.0  # generous: both cores are busy with the load
PAUSE = 4.0  # the durable sleeps that hold a parent in a phase while the test kills the server


def child_id_of(parent_id: str, k: int = 0) -> str:
    return str(uuid.uuid5(_CHILD_NAMESPACE, f"{parent_id}/{k}"))


@pytest.fixture
def cpu_load() -> Iterator[None]:
    """Both cores busy for the test's duration, which stretches every window between two writes."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True) for _ in range(2)
    ]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def status_in_file(data_dir: Path, execution_id: str) -> str | None:
    """The execution's status read straight from the SQLite file: fast enough to catch a short window."""
    with sqlite3.connect(data_dir / "intentd.sqlite", timeout=30) as conn:
        row = conn.execute("SELECT status FROM executions WHERE id = ?", (execution_id,)).fetchone()
    return row[0] if row else None


def poll(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Like wait_until, polling every few ms: the kill must land inside windows of a few ms."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def dbos_state(data_dir: Path, workflow_ids: list[str]) -> dict[str, Any]:
    """What DBOS recorded of these workflows: for the failure message, when a recovery stalls."""
    with sqlite3.connect(data_dir / "dbos.sqlite", timeout=30) as conn:
        return {
            workflow_id: {
                "status": conn.execute(
                    "SELECT status, executor_id, recovery_attempts FROM workflow_status WHERE workflow_uuid = ?",
                    (workflow_id,),
                ).fetchone(),
                "steps": conn.execute(
                    "SELECT function_id, function_name, child_workflow_id, error IS NOT NULL "
                    "FROM operation_outputs WHERE workflow_uuid = ? ORDER BY function_id",
                    (workflow_id,),
                ).fetchall(),
            }
            for workflow_id in workflow_ids
        }


def finished(client: httpx.Client, data_dir: Path, execution_ids: list[str]) -> list[dict[str, Any]]:
    """Each execution once terminal; fails with what DBOS holds if one is still unfinished at the deadline."""
    done = []
    for execution_id in execution_ids:
        try:
            done.append(wait_for(client, execution_id, timeout=RECOVERY_DEADLINE))
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nDBOS: {dbos_state(data_dir, execution_ids)}") from None
    return done


def assert_session_seqs(events: list[dict[str, Any]]) -> None:
    """The session's seq is gapless across its executions: a replay took no seq."""
    seqs = sorted(e["seq"] for e in events)
    assert seqs == list(range(1, len(seqs) + 1)), seqs


def assert_turn_recovered(
    client: httpx.Client, data_dir: Path, turn_id: str, seconds: float
) -> list[dict[str, Any]]:
    """The turn and its `wait` child finished once each, and the turn reported the child's outcome.

    Returns the events of both."""
    child_id = child_id_of(turn_id)
    turn, child = finished(client, data_dir, [turn_id, child_id])
    assert (turn["status"], child["status"]) == ("completed", "completed"), (turn, child)
    assert child["parent_id"] == turn_id
    assert child["result"] == {"waited": seconds}
    turn_events, child_events = events_of(client, turn_id), events_of(client, child_id)
    assert_event_log(turn_events, "execution.completed")
    assert_event_log(child_events, "execution.completed")
    messages = [e["data"] for e in turn_events if e["type"] == "agent.message"]
    assert len(messages) == 1, [e["type"] for e in turn_events]
    assert messages[0]["executions"] == [child_id]
    assert f"`wait` completed: waited: {seconds}" in messages[0]["text"], messages[0]
    assert turn["result"] == {"text": messages[0]["text"], "turn_id": turn_id, "executions": [child_id]}
    return turn_events + child_events


# --- a parent in each phase of its child at the moment of one crash ----------------------------


def test_one_crash_with_parents_in_every_phase_of_their_child(tmp_path: Path, cpu_load: None) -> None:
    process = start_runtime(tmp_path, runtime_env(INTENTD_INTENT_MODULES=CHILD_INTENTS))
    runtime = Runtime(process, tmp_path / "runtime")
    assert runtime.data_dir is not None
    t = tenant()
    phases = {
        # Still in its first durable sleep: its child does not exist yet.
        "before-child": {"child_seconds": 0.2, "before": PAUSE},
        # Its child is inside its step.
        "child-running": {"child_seconds": PAUSE},
        # Its child finished while it sleeps between starting the child and taking its result.
        "child-finished": {"child_seconds": 0.0, "between": PAUSE},
        # It took its child's result and recorded an event about it, but has not finished: a
        # replay that fails where the first run did not must not hide behind that event's n.
        **{f"result-taken-{k}": {"child_seconds": 0.0, "after": PAUSE} for k in range(3)},
    }
    evidence = {phase: tmp_path / phase for phase in phases}
    try:
        with runtime.client() as client:
            session = sqlite_session(runtime.data_dir, t)
            parents = {}
            for phase, params in phases.items():
                evidence[phase].mkdir()
                parents[phase] = create(
                    client, "test.parent", {"dir": str(evidence[phase]), **params}, t, session_id=session
                )["execution_id"]
            turn = create(client, "agent.turn", {"text": "/wait 3"}, t, session_id=session)["execution_id"]
            children = {phase: child_id_of(parent) for phase, parent in parents.items()}
            wait_until(lambda: lines(evidence["child-running"] / "child-step") == ["entered"], "the child's step")
            poll(lambda: status_in_file(runtime.data_dir, children["child-finished"]) == "completed", "a child's end")
            for phase in phases:
                if phase.startswith("result-taken"):
                    wait_until(
                        lambda phase=phase: any(
                            e["type"] == "test.child-outcome" for e in events_of(client, parents[phase])
                        ),
                        "a parent to take its child's result",
                    )
            poll(lambda: status_in_file(runtime.data_dir, child_id_of(turn)) == "running", "the turn's child")
            wait_for(client, child_id_of(turn), lambda e: (e["progress"] or 0) > 0, timeout=RECOVERY_DEADLINE)
        process.kill9()
        # The phases the crash caught them in:
        assert status_in_file(runtime.data_dir, children["before-child"]) is None
        assert status_in_file(runtime.data_dir, children["child-running"]) == "running"
        assert status_in_file(runtime.data_dir, children["child-finished"]) == "completed"
        assert status_in_file(runtime.data_dir, parents["child-finished"]) == "running"
        for phase in phases:
            if phase.startswith("result-taken"):
                assert status_in_file(runtime.data_dir, parents[phase]) == "running"
        assert status_in_file(runtime.data_dir, child_id_of(turn)) == "running"

        process.start(timeout=60)
        with runtime.client() as client:
            ids = [*parents.values(), *children.values()]
            done = dict(zip(ids, finished(client, runtime.data_dir, ids), strict=True))
            for phase, parent_id in parents.items():
                parent, child = done[parent_id], done[children[phase]]
                assert (parent["status"], child["status"]) == ("completed", "completed"), (phase, parent, child)
                assert child["parent_id"] == parent_id
                assert child["result"] == {"token": f"{child['execution_id']}:work",
                                           "seconds": phases[phase]["child_seconds"]}
                assert parent["result"] == {
                    "child_id": child["execution_id"],
                    "child": {"status": "completed", "result": child["result"], "error": None},
                }, phase
                parent_events = events_of(client, parent_id)
                assert_event_log(parent_events, "execution.completed")
                assert_event_log(events_of(client, children[phase]), "execution.completed")
                outcomes = [e["data"] for e in parent_events if e["type"] == "test.child-outcome"]
                assert outcomes == [{"child_id": children[phase], "status": "completed"}], phase
            assert_turn_recovered(client, runtime.data_dir, turn, 3.0)
            everything = [e for execution_id in [*ids, turn, child_id_of(turn)] for e in events_of(client, execution_id)]
            assert_session_seqs(everything)
    finally:
        process.stop()

    # The parent's body runs again after the crash; a finished child's step does not.
    for phase in phases:
        assert lines(evidence[phase] / "parent-body") == ["ran", "ran"], phase
    assert lines(evidence["before-child"] / "child-step") == ["entered"]
    assert lines(evidence["child-running"] / "child-step") == ["entered", "entered"]
    assert lines(evidence["child-finished"] / "child-step") == ["entered"]
    for phase in phases:
        if phase.startswith("result-taken"):
            assert lines(evidence[phase] / "child-step") == ["entered"], phase


# --- the agent's turn, crashed around its child's start and end, under load -------------------


def crash_turns_around_their_child(
    process: IntentdProcess, client: Callable[[], httpx.Client], data_dir: Path, kill_points: list[tuple[str, float]]
) -> None:
    """For each (moment, delay): a new turn running `/wait 1`, killed `delay` s after the moment, restarted, checked.

    Moments: "created" (its child's row exists), "completed" (its child's row is
    completed; the turn may or may not have taken the result yet).
    """
    for moment, delay in kill_points:
        t = tenant()
        session = sqlite_session(data_dir, t)
        with client() as http:
            turn = create(http, "agent.turn", {"text": "/wait 1"}, t, session_id=session)["execution_id"]
        child = child_id_of(turn)
        if moment == "created":
            poll(lambda child=child: status_in_file(data_dir, child) is not None, "the child's row")
        else:
            poll(lambda child=child: status_in_file(data_dir, child) == "completed", "the child's completion")
        time.sleep(delay)
        process.kill9()
        process.start(timeout=60)
        with client() as http:
            assert_session_seqs(assert_turn_recovered(http, data_dir, turn, 1.0))


KILL_POINTS = [("created", 0.0), ("completed", 0.0)]


def test_turns_crashed_around_their_child_recover_on_serve_runtime(tmp_path: Path, cpu_load: None) -> None:
    process = start_runtime(tmp_path, runtime_env())
    runtime = Runtime(process, tmp_path / "runtime")
    assert runtime.data_dir is not None
    try:
        crash_turns_around_their_child(process, runtime.client, runtime.data_dir, KILL_POINTS)
    finally:
        process.stop()


def test_turns_crashed_around_their_child_recover_on_intentd_up(tmp_path: Path, cpu_load: None) -> None:
    token = secrets.token_urlsafe(24)
    up = UpServer(tmp_path / "data", env={"INTENTD_SERVICE_TOKEN": token, "INTENTD_LOG_LEVEL": "WARNING"})
    up.start(timeout=60)

    def client() -> httpx.Client:
        return httpx.Client(base_url=up.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    try:
        crash_turns_around_their_child(up, client, up.data_dir, [("completed", 0.0)])
    finally:
        up.stop()
