"""Runtime replicas share the work, and a live replica finishes a dead one's executions."""

from __future__ import annotations

import time

import httpx
import psycopg

from harness import IntentdProcess


def submit(runtime: IntentdProcess, token: str, intent: str, params: dict) -> str:
    response = httpx.post(
        f"{runtime.url}/api/runtime/executions",
        json={"intent": intent, "params": params, "tenant_id": "t1"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 202, response.text
    return response.json()["execution_id"]


def executor_of(database_url: str, execution_id: str) -> str | None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT executor_id FROM dbos.workflow_status WHERE workflow_uuid = %s AND status = 'PENDING'",
            (execution_id,),
        ).fetchone()
    return row[0] if row else None


def events(runtime: IntentdProcess, token: str, execution_id: str) -> list[dict]:
    response = httpx.get(
        f"{runtime.url}/api/runtime/executions/{execution_id}/events",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_kill9_of_a_runtime_replica_is_recovered_by_the_other_within_10s(cluster) -> None:
    token = cluster.env["INTENTD_SERVICE_TOKEN"]
    a = cluster.runtime("runtime-a")
    b = cluster.runtime("runtime-b")
    ids = [submit(a if i % 2 else b, token, "wait", {"seconds": 4}) for i in range(6)]

    # Wait until each execution is running somewhere; find one that runs on B.
    deadline = time.monotonic() + 15
    owners: dict[str, str | None] = {}
    while time.monotonic() < deadline:
        owners = {i: executor_of(cluster.env["INTENTD_DATABASE_URL"], i) for i in ids}
        if all(owners.values()):
            break
        time.sleep(0.2)
    victims = [i for i, owner in owners.items() if owner and f"-{b.pid}-" in owner]
    assert victims, f"runtime B ran none of the executions: {owners}"
    time.sleep(1.5)
    b.kill9()
    killed_at = time.monotonic()

    # Every execution completes, the victims on A, within 10 s of their due time.
    for execution_id in ids:
        while True:
            status = httpx.get(
                f"{a.url}/api/runtime/executions/{execution_id}", headers={"Authorization": f"Bearer {token}"}
            ).json()["status"]
            if status == "completed":
                break
            assert time.monotonic() - killed_at < 4 + 10, f"{execution_id} still {status}"
            time.sleep(0.2)
        numbers = [e["n"] for e in events(a, token, execution_id)]
        assert numbers == list(range(len(numbers))), "events must be gapless and unique"
        types = [e["type"] for e in events(a, token, execution_id)]
        assert types.count("execution.completed") == 1
        assert types.count("execution.progress") == 4
