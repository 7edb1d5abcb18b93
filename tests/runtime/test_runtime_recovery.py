"""Crash recovery: `kill -9` of a runtime server mid-execution, restart, and the execution completes.

Completed steps do not run again, the interrupted step runs again (at least
once), and no event is recorded twice, on SQLite and on PostgreSQL, also when
the handler module's source was edited between the crash and the restart.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from runtime_support import (
    TESTS_DIR,
    Runtime,
    assert_event_log,
    create,
    events_of,
    lines,
    postgres_session,
    runtime_env,
    sqlite_session,
    start_runtime,
    tenant,
    wait_for,
    wait_until,
)

PAUSE = 3.0  # how long the slow step sleeps: the test kills the process meanwhile


def edit_source(module: Path) -> None:
    """A harmless edit (comment and blank lines), as a deploy between crash and restart would make."""
    source = module.read_text()
    edited = source.replace('"""Intents that only', '"""Intents (edited after the crash) that only', 1)
    assert edited != source
    module.write_text(edited + "\n\n# edited between the crash and the restart\n")


def crash_and_recover(
    workdir: Path, extra_env: dict[str, str], new_session: Callable[[Runtime, str], str], *, edit: bool
) -> None:
    modules = workdir / "modules"
    modules.mkdir()
    module = modules / "intents_for_tests.py"
    shutil.copy(TESTS_DIR / "intents_for_tests.py", module)
    evidence = workdir / "evidence"
    evidence.mkdir()
    process = start_runtime(workdir, runtime_env(modules_path=modules, **extra_env))
    runtime = Runtime(process, workdir / "runtime")
    t = tenant()
    try:
        with runtime.client() as client:
            session = new_session(runtime, t)
            crashable = create(client, "test.crashable", {"dir": str(evidence), "pause": PAUSE}, t, session_id=session)
            waiting = create(client, "wait", {"seconds": 4}, t, session_id=session)
            ids = [crashable["execution_id"], waiting["execution_id"]]
            wait_until(lambda: lines(evidence / "slow") == ["entered"], "the slow step to start")
            wait_for(client, ids[1], lambda e: (e["progress"] or 0) > 0)
            before = {execution_id: events_of(client, execution_id) for execution_id in ids}
        process.kill9()
        assert lines(evidence / "third") == [], "killed before the last step"
        if edit:
            edit_source(module)
        process.start(timeout=60)
        with runtime.client() as client:
            done = [wait_for(client, execution_id, timeout=60) for execution_id in ids]
            after = {execution_id: events_of(client, execution_id) for execution_id in ids}
    finally:
        process.stop()

    assert [d["status"] for d in done] == ["completed", "completed"], done
    assert done[0]["result"] == {"steps": ["first", "second", "slow", "third"]}
    assert done[1]["result"] == {"waited": 4.0}
    # Completed steps ran once; the step the crash interrupted ran again from its start.
    assert lines(evidence / "first") == ["ran"]
    assert lines(evidence / "second") == ["ran"]
    assert lines(evidence / "slow") == ["entered", "entered"]
    assert lines(evidence / "third") == ["ran"]

    for execution_id in ids:
        events = after[execution_id]
        assert_event_log(events, "execution.completed")
        assert events[: len(before[execution_id])] == before[execution_id], "recorded events are kept as they were"
    custom = [(e["type"], e["data"]) for e in after[ids[0]] if not e["type"].startswith("execution.")]
    assert custom == [
        ("test.step", {"name": "first"}),
        ("test.inside", {"name": "second"}),
        ("test.step", {"name": "third"}),
    ]
    progress = [e["data"]["fraction"] for e in after[ids[1]] if e["type"] == "execution.progress"]
    assert progress == [0.25, 0.5, 0.75, 1.0], "each progress event once"
    # The session's seq stays gapless: replays after recovery took no seq.
    both = sorted([*after[ids[0]], *after[ids[1]]], key=lambda e: e["seq"])
    assert [e["seq"] for e in both] == list(range(1, len(both) + 1))


def _sqlite_session(runtime: Runtime, tenant_id: str) -> str:
    assert runtime.data_dir is not None
    return sqlite_session(runtime.data_dir, tenant_id)


@pytest.mark.parametrize("edit", [False, True], ids=["same-source", "edited-source"])
def test_recovery_after_kill_9_on_sqlite(tmp_path: Path, edit: bool) -> None:
    crash_and_recover(tmp_path, {}, _sqlite_session, edit=edit)


@pytest.mark.parametrize("edit", [False, True], ids=["same-source", "edited-source"])
def test_recovery_after_kill_9_on_postgres(tmp_path: Path, fresh_postgres_url: Callable[[], str], edit: bool) -> None:
    url = fresh_postgres_url()
    env: dict[str, Any] = {
        "INTENTD_DATABASE_URL": url,
        # The restarted process recovers the work of its own executor id.
        "INTENTD_EXECUTOR_ID": f"recovery-{secrets.token_hex(4)}",
    }
    crash_and_recover(tmp_path, env, lambda runtime, t: postgres_session(url, t), edit=edit)
