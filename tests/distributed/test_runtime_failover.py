"""Runtime replicas share the work, and a live replica finishes a dead one's executions."""

from __future__ import annotations

import time

import httpx
from cluster_support import executor_of
from harness import IntentdProcess


def submit(runtime: IntentdProcess, token: str, intent: str, params: dict) -> str:
    response = httpx.post(
        f"{runtime.url}/api/runtime/executions",
        json={"intent": intent, "params": params, "tenant_id": "t1"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 202, response.text
    return response.json()["execution_id"]


def events(runtime: IntentdProcess, token: str, execution_id: str) -> list[dict]:
    response = httpx.get(
        f"{runtime.url}/api/runtime/executions/{execution_id}/events",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


def wait_running_on(cluster, runtime: IntentdProcess, ids: list[str]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        owners = {i: executor_of(cluster.env["INTENTD_DATABASE_URL"], i) for i in ids}
        if all(owner and f"-{runtime.pid}-" in owner for owner in owners.values()):
            return
        time.sleep(0.1)
    raise AssertionError(f"not all running on {runtime.url}: {owners}")


def wait_completed(
    runtime: IntentdProcess, token: str, ids: list[str], within: float, progress_events: int = 6
) -> None:
    deadline = time.monotonic() + within
    for execution_id in ids:
        while True:
            status = httpx.get(
                f"{runtime.url}/api/runtime/executions/{execution_id}", headers={"Authorization": f"Bearer {token}"}
            ).json()["status"]
            if status == "completed":
                break
            assert time.monotonic() < deadline, f"{execution_id} still {status}"
            time.sleep(0.2)
        found = events(runtime, token, execution_id)
        assert [e["n"] for e in found] == list(range(len(found))), "events must be gapless and unique"
        types = [e["type"] for e in found]
        assert types.count("execution.completed") == 1
        assert types.count("execution.progress") == progress_events


def test_kill9_of_a_runtime_replica_is_recovered_exactly_once_within_10s(cluster) -> None:
    token = cluster.env["INTENTD_SERVICE_TOKEN"]
    # Two live replicas will notice B's death at the same moment; one claims it.
    b, a, c = cluster.runtime("runtime-b"), cluster.runtime("runtime-a"), cluster.runtime("runtime-c")
    ids = [submit(b, token, "wait", {"seconds": 12}) for _ in range(4)]
    wait_running_on(cluster, b, ids)  # B has free slots: it starts what it accepts
    b.kill9()
    # Due in at most 12 s; recovery may add up to 10 s. Events gapless, one outcome each.
    wait_completed(a, token, ids, within=12 + 10, progress_events=12)
    claims = [p for p in (a, c) if "recovering the work of a dead runtime replica" in p.log_text()]
    assert len(claims) == 1, "exactly one live replica recovers the dead one's work"


def test_sigterm_drains_a_runtime_replica_and_another_finishes_its_work(cluster) -> None:
    token = cluster.env["INTENTD_SERVICE_TOKEN"]
    b, a = cluster.runtime("runtime-b"), cluster.runtime("runtime-a")
    ids = [submit(b, token, "wait", {"seconds": 6}) for _ in range(4)]
    wait_running_on(cluster, b, ids)
    assert b.terminate() == 0
    wait_completed(a, token, ids, within=6 + 10)
