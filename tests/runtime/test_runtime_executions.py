"""Executions on a real runtime server: retry, timeout, cancel, compensation, children, events, SSE, threads."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from dbos import DBOSClient
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

from intentd.runtime.dbos_config import DBOS_THREADS
from intentd.runtime.engine import QUEUE_NAME, params_hash
from intentd.store import Store
from intentd.store.acceptance import accept

EXECUTIONS = "/api/runtime/executions"
CANCEL_DEADLINE = 1.0  # the issue: cancellation of `wait` is observed within 1 s


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


# --- retry ------------------------------------------------------------------------------------


def test_a_failing_step_is_retried_with_backoff_then_succeeds(client: httpx.Client, evidence: Path) -> None:
    made = create(client, "test.flaky", {"dir": str(evidence), "failures": 3}, tenant())
    done = wait_for(client, made["execution_id"])
    assert done["status"] == "completed", done
    assert done["result"] == {"attempts": 4}
    attempts = [line.split() for line in lines(evidence / "attempts")]
    assert len(attempts) == 4, "three failures, then the attempt that succeeds, and no more"
    # Every attempt sees the same step idempotency key.
    assert {key for _, key in attempts} == {f"{made['execution_id']}:call"}
    times = [float(at) for at, _ in attempts]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    # RetryPolicy(interval=0.2, backoff=3.0): each wait is at least the policy's, and grows.
    for i, gap in enumerate(gaps):
        assert gap >= 0.2 * 3.0**i * 0.9, gaps
    assert gaps[0] < gaps[1] < gaps[2], gaps
    assert_event_log(events_of(client, made["execution_id"]), "execution.completed")


def test_retries_exhausted_is_a_failure(client: httpx.Client, evidence: Path) -> None:
    made = create(client, "test.flaky", {"dir": str(evidence), "failures": 10}, tenant())
    done = wait_for(client, made["execution_id"])
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "handler_error"
    assert "fails on purpose" in done["error"]["message"], "the message carries the last error"
    assert len(lines(evidence / "attempts")) == 4, "attempts=4 in all"
    events = events_of(client, made["execution_id"])
    assert_event_log(events, "execution.failed")
    assert events[-1]["data"]["code"] == "handler_error"


# --- timeout -----------------------------------------------------------------------------------


def test_timeout_fails_the_execution_with_code_timeout(client: httpx.Client) -> None:
    t = tenant()
    in_handler = create(client, "test.slow", {"seconds": 30}, t)["execution_id"]
    in_step = create(client, "test.slow", {"seconds": 30, "in_step": True}, t)["execution_id"]
    for execution_id in (in_handler, in_step):
        done = wait_for(client, execution_id)
        assert done["status"] == "failed", done
        assert done["error"]["code"] == "timeout", done
        assert done["finished_at"] - done["started_at"] < 30
        events = events_of(client, execution_id)
        assert_event_log(events, "execution.failed")
        assert events[-1]["data"]["code"] == "timeout"
        assert events[-1]["data"]["message"]


def test_a_handlers_own_timeout_is_a_handler_error_not_the_intents(client: httpx.Client) -> None:
    done = wait_for(client, create(client, "test.own_timeout", {}, tenant())["execution_id"])
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "handler_error"
    assert "TimeoutError" in done["error"]["message"]


def test_a_failing_compensation_is_the_outcome(client: httpx.Client) -> None:
    execution_id = create(client, "test.bad_undo", {}, tenant())["execution_id"]
    done = wait_for(client, execution_id)
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "compensation_failed"
    types = [e["type"] for e in events_of(client, execution_id)]
    assert types[-2:] == ["execution.compensating", "execution.failed"]


# --- cancellation ------------------------------------------------------------------------------


def test_cancelling_wait_is_observed_within_a_second(client: httpx.Client) -> None:
    made = create(client, "wait", {"seconds": 60}, tenant())["execution_id"]
    wait_for(client, made, lambda e: e["status"] == "running" and (e["progress"] or 0) > 0)
    asked = time.monotonic()
    response = client.post(f"{EXECUTIONS}/{made}/cancel")
    assert response.status_code == 202
    assert response.json() == {"execution_id": made, "status": "running", "cancel_requested": True}
    done = wait_for(client, made, timeout=10)
    observed = time.monotonic() - asked
    assert done["status"] == "cancelled", done
    assert observed <= CANCEL_DEADLINE, f"cancellation took {observed:.2f} s"
    assert done["error"] is None and done["result"] is None
    events = events_of(client, made)
    assert_event_log(events, "execution.cancelled")
    assert "execution.progress" in types_of(events)
    # A second cancel changes nothing.
    again = client.post(f"{EXECUTIONS}/{made}/cancel").json()
    assert again["status"] == "cancelled" and again["cancel_requested"] is False
    assert len(events_of(client, made)) == len(events)


# --- compensation ------------------------------------------------------------------------------


def test_failure_compensates_in_reverse_order(client: httpx.Client, evidence: Path) -> None:
    made = create(client, "test.saga", {"dir": str(evidence), "steps": 3, "fail": True}, tenant())["execution_id"]
    done = wait_for(client, made)
    assert done["status"] == "failed"
    assert done["error"] == {"code": "saga_failed", "message": "failing after the steps on purpose"}
    assert lines(evidence / "saga") == ["do 0", "do 1", "do 2", "undo 2", "undo 1", "undo 0"]
    events = events_of(client, made)
    assert_event_log(events, "execution.failed")
    types = types_of(events)
    assert types.count("execution.compensating") == 1
    assert types.index("execution.compensating") == len(types) - 2, "compensating, then failed"
    assert events[-2]["data"]["steps"] == ["reserve-2", "reserve-1", "reserve-0"]


def test_cancel_compensates_in_reverse_order(client: httpx.Client, evidence: Path) -> None:
    made = create(client, "test.saga", {"dir": str(evidence), "steps": 3, "wait": 60}, tenant())["execution_id"]
    wait_until(lambda: len(lines(evidence / "saga")) == 3, "the three steps")
    assert client.post(f"{EXECUTIONS}/{made}/cancel").status_code == 202
    done = wait_for(client, made)
    assert done["status"] == "cancelled", done
    assert lines(evidence / "saga") == ["do 0", "do 1", "do 2", "undo 2", "undo 1", "undo 0"]
    events = events_of(client, made)
    assert_event_log(events, "execution.cancelled")
    assert types_of(events)[-2:] == ["execution.compensating", "execution.cancelled"]


def test_success_compensates_nothing(client: httpx.Client, evidence: Path) -> None:
    made = create(client, "test.saga", {"dir": str(evidence), "steps": 2}, tenant())["execution_id"]
    done = wait_for(client, made)
    assert done["status"] == "completed" and done["result"] == {"done": [0, 1]}
    assert lines(evidence / "saga") == ["do 0", "do 1"]
    assert "execution.compensating" not in types_of(events_of(client, made))


# --- children -----------------------------------------------------------------------------------


def test_child_execution_reports_to_its_parent(runtime: Runtime, client: httpx.Client) -> None:
    assert runtime.data_dir is not None
    t = tenant()
    session = sqlite_session(runtime.data_dir, t)
    parent = create(
        client,
        "test.parent",
        {"child_intent": "echo", "child_params": {"message": "from child"}},
        t,
        session_id=session,
        user_id="u-parent",
    )["execution_id"]
    done = wait_for(client, parent)
    assert done["status"] == "completed", done
    child_id = done["result"]["child_id"]
    assert done["result"]["child"] == {"status": "completed", "result": {"message": "from child"}, "error": None}
    child = client.get(f"{EXECUTIONS}/{child_id}").json()
    assert child["parent_id"] == parent
    assert child["status"] == "completed"
    assert (child["tenant_id"], child["session_id"], child["user_id"]) == (t, session, "u-parent")
    listed = client.get(EXECUTIONS, params={"tenant_id": t, "parent_id": parent}).json()["items"]
    assert [e["execution_id"] for e in listed] == [child_id]
    assert_event_log(events_of(client, child_id), "execution.completed")
    assert_event_log(events_of(client, parent), "execution.completed")


def test_a_failing_child_is_reported_to_its_parent(client: httpx.Client) -> None:
    parent = create(client, "test.parent", {"child_intent": "test.slow", "child_params": {"seconds": 30}}, tenant())[
        "execution_id"
    ]
    done = wait_for(client, parent)
    assert done["status"] == "completed", done
    child = done["result"]["child"]
    assert child["status"] == "failed" and child["error"]["code"] == "timeout"


def test_cancelling_a_parent_cancels_its_child(client: httpx.Client) -> None:
    parent = create(client, "test.parent", {"child_intent": "wait", "child_params": {"seconds": 60}}, tenant())[
        "execution_id"
    ]

    def running_child() -> list[dict[str, Any]]:
        items = client.get(EXECUTIONS, params={"parent_id": parent}).json()["items"]
        return [c for c in items if c["status"] == "running"]

    wait_until(lambda: bool(running_child()), "the child to run")
    child_id = running_child()[0]["execution_id"]
    assert client.post(f"{EXECUTIONS}/{parent}/cancel").status_code == 202
    assert wait_for(client, child_id)["status"] == "cancelled"
    assert wait_for(client, parent)["status"] == "cancelled"


# --- events ---------------------------------------------------------------------------------------


def test_events_are_recorded_once_and_in_order(runtime: Runtime, client: httpx.Client) -> None:
    assert runtime.data_dir is not None
    t = tenant()
    session = sqlite_session(runtime.data_dir, t)
    first = create(client, "test.emitter", {"count": 6}, t, session_id=session)["execution_id"]
    second = create(client, "echo", {"message": "same session"}, t, session_id=session)["execution_id"]
    for execution_id in (first, second):
        assert wait_for(client, execution_id)["status"] == "completed"
    events = events_of(client, first)
    assert_event_log(events, "execution.completed")
    pings = [e["data"] for e in events if e["type"] == "test.ping"]
    assert pings == [{"i": i, "inside_step": bool(i % 2)} for i in range(6)]
    progress = [e["data"]["fraction"] for e in events if e["type"] == "execution.progress"]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert events[0]["data"] == {"intent": "test.emitter", "params": {"count": 6}}
    assert events[-1]["data"] == {"result": {"emitted": 6}}
    assert all(e["execution_id"] == first and e["session_id"] == session for e in events)
    # The session's seq is gapless across its executions.
    both = sorted(events + events_of(client, second), key=lambda e: e["seq"])
    assert [e["seq"] for e in both] == list(range(1, len(both) + 1))
    # after=N is the execution-local index.
    assert events_of(client, first, after=3) == events[4:]
    assert events_of(client, first, after=len(events) - 1) == []
    limited = client.get(f"{EXECUTIONS}/{first}/events", params={"limit": 2}).json()["items"]
    assert limited == events[:2]


def read_sse(client: httpx.Client, execution_id: str, after: int | None = None) -> list[dict[str, Any]]:
    """Every `data:` event of the stream, until the server ends it."""
    params = {} if after is None else {"after": after}
    received: list[dict[str, Any]] = []
    with client.stream(
        "GET",
        f"{EXECUTIONS}/{execution_id}/events",
        params=params,
        headers={"Accept": "text/event-stream"},
        timeout=httpx.Timeout(30.0),
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                received.append(orjson.loads(line[len("data: ") :]))
    return received


def test_sse_streams_every_event_live_then_ends(client: httpx.Client) -> None:
    made = create(client, "wait", {"seconds": 2.5}, tenant())["execution_id"]
    streamed = read_sse(client, made)
    assert types_of(streamed)[-1] == "execution.completed"
    assert streamed == events_of(client, made), "the stream carries exactly the recorded events"
    assert_event_log(streamed, "execution.completed")
    assert types_of(streamed).count("execution.progress") == 3  # after 1 s, 2 s and 2.5 s


def test_sse_of_a_finished_execution_replays_after_n_and_ends(client: httpx.Client) -> None:
    made = create(client, "test.emitter", {"count": 3}, tenant())["execution_id"]
    wait_for(client, made)
    recorded = events_of(client, made)
    assert read_sse(client, made) == recorded
    assert read_sse(client, made, after=2) == recorded[3:]


# --- the queue ------------------------------------------------------------------------------------


def test_concurrency_limit_queues_work_and_a_queued_execution_can_be_cancelled(tmp_path: Path) -> None:
    """INTENTD_RUNTIME_CONCURRENCY=1: one execution at a time; the others wait, accepted, in the queue."""
    process = start_runtime(tmp_path, runtime_env(INTENTD_RUNTIME_CONCURRENCY="1"))
    try:
        with Runtime(process).client() as client:
            t = tenant()
            busy = create(client, "wait", {"seconds": 2}, t)["execution_id"]
            wait_for(client, busy, lambda e: e["status"] == "running")
            queued = create(client, "echo", {"message": "after"}, t)["execution_id"]
            dropped = create(client, "echo", {"message": "never"}, t)["execution_id"]
            assert client.get(f"{EXECUTIONS}/{queued}").json()["status"] == "accepted"
            cancel = client.post(f"{EXECUTIONS}/{dropped}/cancel")
            assert cancel.json() == {"execution_id": dropped, "status": "accepted", "cancel_requested": True}
            assert wait_for(client, busy)["status"] == "completed"
            done = wait_for(client, queued)
            assert done["status"] == "completed" and done["started_at"] >= wait_for(client, busy)["finished_at"]
            assert wait_for(client, dropped)["status"] == "cancelled"
            # Cancelled before it started: accepted, then cancelled; the handler never ran.
            assert types_of(events_of(client, dropped)) == ["execution.accepted", "execution.cancelled"]
    finally:
        process.stop()


def test_an_execution_starts_at_once_when_a_slot_is_free_without_waiting_for_a_queue_poll(tmp_path: Path) -> None:
    process = start_runtime(tmp_path, runtime_env(INTENTD_QUEUE_POLL_INTERVAL="30"))
    try:
        with Runtime(process).client() as client:
            t = tenant()
            made = [create(client, "echo", {"message": str(i)}, t)["execution_id"] for i in range(3)]
            # A queued execution would wait for the next poll, 30 s away.
            done = [wait_for(client, execution_id, timeout=10) for execution_id in made]
            assert [e["status"] for e in done] == ["completed"] * 3
    finally:
        process.stop()


def test_started_directly_or_from_the_queue_no_more_than_the_limit_run_at_once(tmp_path: Path) -> None:
    process = start_runtime(tmp_path, runtime_env(INTENTD_RUNTIME_CONCURRENCY="2", INTENTD_QUEUE_POLL_INTERVAL="0.05"))
    try:
        with Runtime(process).client() as client:
            t = tenant()
            made = [create(client, "wait", {"seconds": 0.5}, t)["execution_id"] for _ in range(6)]
            done = [wait_for(client, execution_id, timeout=30) for execution_id in made]
            assert [e["status"] for e in done] == ["completed"] * 6
            edges = sorted([(e["started_at"], 1) for e in done] + [(e["finished_at"], -1) for e in done])
            running = peak = 0
            for _, step in edges:
                running += step
                peak = max(peak, running)
            assert peak <= 2, f"{peak} ran at once"
    finally:
        process.stop()


def test_plain_function_steps_block_side_by_side_off_the_loop_and_dbos_keeps_its_few_threads(
    client: httpx.Client,
) -> None:
    results = _run_blocking_steps(client)
    assert {r["dbos_synchronous"] for r in results} == {1}, "DBOS's file as durable as ours: NORMAL"


def test_on_postgres_too_dbos_keeps_its_few_threads(tmp_path: Path, fresh_postgres_url: Callable[[], str]) -> None:
    process = start_runtime(tmp_path, runtime_env(INTENTD_DATABASE_URL=fresh_postgres_url()))
    try:
        with Runtime(process).client() as client:
            _run_blocking_steps(client)
    finally:
        process.stop()


def _run_blocking_steps(client: httpx.Client) -> list[dict[str, Any]]:
    """64 executions whose plain-function step blocks 0.3 s: where they ran, and DBOS's threads meanwhile."""
    t = tenant()
    response = client.post(f"{EXECUTIONS}/batch", json={
        "items": [{"intent": "test.where", "params": {"pause": 0.3}, "tenant_id": t} for _ in range(64)]})
    assert response.status_code == 200, response.text
    made = [item["body"]["execution_id"] for item in response.json()["items"]]
    done = [wait_for(client, execution_id) for execution_id in made]
    assert [e["status"] for e in done] == ["completed"] * 64, done
    results = [e["result"] for e in done]
    # On the runtime's threads, in the step's DBOS context.
    assert all(r["thread"].startswith("intentd-step") for r in results), {r["thread"] for r in results}
    assert [r["workflow_id"] for r in results] == made
    # On the event loop they would have run one after another.
    edges = sorted([(r["began"], 1) for r in results] + [(r["ended"], -1) for r in results])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak > 1, "the blocking steps ran one at a time"
    # DBOS's database calls queue for its few threads instead of a thread each.
    assert max(r["dbos_threads"] for r in results) <= DBOS_THREADS
    return results


def test_sqlite_synchronous_full_reaches_dbos_too(tmp_path: Path) -> None:
    process = start_runtime(tmp_path, runtime_env(INTENTD_SQLITE_SYNCHRONOUS="full"))
    try:
        with Runtime(process).client() as client:
            made = create(client, "test.where", {"pause": 0}, tenant())
            assert wait_for(client, made["execution_id"])["result"]["dbos_synchronous"] == 2
    finally:
        process.stop()


def test_a_workflow_recorded_with_the_execution_id_as_argument_still_runs(runtime: Runtime, client: httpx.Client) -> None:
    # Earlier versions started each execution's workflow with its id as the argument.
    assert runtime.data_dir is not None
    execution_id = str(uuid.uuid4())
    values = {"id": execution_id, "tenant_id": tenant(), "user_id": None, "session_id": None, "parent_id": None,
              "retry_of": None, "intent": "echo", "params": {"message": "earlier"},
              "params_hash": params_hash("echo", {"message": "earlier"}), "idempotency_key": None,
              "status": "accepted", "created_at": time.time()}

    async def accept_only() -> None:
        store = Store(f"sqlite+aiosqlite:///{runtime.data_dir / 'intentd.sqlite'}")
        try:
            await accept(store, values)
        finally:
            await store.close()

    asyncio.run(accept_only())
    dbos = DBOSClient(system_database_url=f"sqlite:///{runtime.data_dir / 'dbos.sqlite'}")
    try:
        dbos.enqueue({"workflow_name": "intentd.execute", "queue_name": QUEUE_NAME, "workflow_id": execution_id},
                     execution_id)
    finally:
        dbos.destroy()
    done = wait_for(client, execution_id)
    assert done["status"] == "completed" and done["result"] == {"message": "earlier"}, done
