"""The runtime API against a real server: auth, bad input, idempotency, listing, intents, health."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runtime_support import (
    Runtime,
    assert_problem,
    create,
    events_of,
    sqlite_session,
    tenant,
    wait_for,
)

EXECUTIONS = "/api/runtime/executions"
ONE_MIB = 1 << 20


def count(client: httpx.Client, **filters: Any) -> int:
    response = client.get(EXECUTIONS, params={"limit": 500, **filters})
    assert response.status_code == 200, response.text
    return len(response.json()["items"])


# --- plane, health, metrics -----------------------------------------------------------


def test_health_needs_no_token_and_names_the_executor(runtime: Runtime) -> None:
    with runtime.client(token=None) as anonymous:
        response = anonymous.get("/api/runtime/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["executor_id"]


def test_ready_and_metrics(runtime: Runtime, client: httpx.Client) -> None:
    create(client, "echo", {"message": "counted"}, tenant())
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'intentd_executions_created_total{intent="echo"}' in metrics.text


def test_unknown_route_is_a_problem_from_the_runtime_plane(client: httpx.Client) -> None:
    assert_problem(client.get("/api/runtime/nothing-here"), 404, "not_found")


# --- authentication -----------------------------------------------------------------------

PROTECTED = [
    ("GET", EXECUTIONS, None),
    ("POST", EXECUTIONS, {"intent": "echo", "params": {}, "tenant_id": "t"}),
    ("POST", f"{EXECUTIONS}/batch", {"items": [{"intent": "echo", "params": {}, "tenant_id": "t"}]}),
    ("GET", f"{EXECUTIONS}/some-id", None),
    ("POST", f"{EXECUTIONS}/some-id/cancel", None),
    ("GET", f"{EXECUTIONS}/some-id/events", None),
    ("GET", "/api/runtime/intents", None),
]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Basic dXNlcjpwYXNz", "Bearer"])
def test_protected_routes_refuse_a_missing_or_wrong_token(
    runtime: Runtime, method: str, path: str, body: Any, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with runtime.client(token=None, headers=headers) as anonymous:
        before = count_all(runtime)
        response = anonymous.request(method, path, json=body)
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert count_all(runtime) == before


def count_all(runtime: Runtime) -> int:
    with runtime.client() as service:
        return count(service)


def test_admin_jwt_is_pinned_to_its_tenant(runtime: Runtime, client: httpx.Client) -> None:
    mine, theirs = tenant(), tenant()
    own = create(client, "echo", {"message": "mine"}, mine)["execution_id"]
    foreign = create(client, "wait", {"seconds": 30}, theirs)["execution_id"]
    with runtime.client(token=runtime.admin_token(mine)) as admin:
        assert admin.get(f"{EXECUTIONS}/{own}").status_code == 200
        # Another tenant's execution does not exist for this admin, whatever the query says.
        assert_problem(admin.get(f"{EXECUTIONS}/{foreign}"), 404, "not_found")
        assert_problem(admin.get(f"{EXECUTIONS}/{foreign}", params={"tenant_id": theirs}), 404, "not_found")
        assert_problem(admin.get(f"{EXECUTIONS}/{foreign}/events"), 404, "not_found")
        assert_problem(admin.post(f"{EXECUTIONS}/{foreign}/cancel"), 404, "not_found")
        listed = admin.get(EXECUTIONS, params={"tenant_id": theirs}).json()["items"]
        assert [e["execution_id"] for e in listed] == [own]
        # A body naming another tenant still creates in the admin's own tenant.
        made = create(admin, "echo", {"message": "pinned"}, theirs)
        assert made["execution"]["tenant_id"] == mine
        assert admin.get("/api/runtime/intents").status_code == 200
    assert client.get(f"{EXECUTIONS}/{foreign}").json()["cancel_requested"] is False
    assert client.post(f"{EXECUTIONS}/{foreign}/cancel").status_code == 202


def test_other_jwts_are_refused(runtime: Runtime) -> None:
    t = tenant()
    cases = [
        (runtime.admin_token(t, role="user"), 403, "forbidden"),
        (runtime.admin_token(t, ttl=-60), 401, "unauthorized"),  # expired
        (runtime.admin_token(t, key="not-the-secret-key-of-this-server"), 401, "unauthorized"),
        (runtime.admin_token(t, disabled=True), 401, "unauthorized"),  # disabled since the token was issued
        (runtime.admin_token(t, revoked=True), 401, "unauthorized"),  # logged out
        (runtime.admin_token(t, stored_role="user"), 403, "forbidden"),  # demoted since
    ]
    for token, status, code in cases:
        with runtime.client(token=token) as caller:
            assert_problem(caller.get(EXECUTIONS), status, code)
            assert_problem(caller.post(EXECUTIONS, json={"intent": "echo", "params": {}, "tenant_id": t}), status, code)
    with runtime.client() as service:
        assert count(service, tenant_id=t) == 0


# --- bad input ------------------------------------------------------------------------------


def test_malformed_json_is_400(client: httpx.Client) -> None:
    t = tenant()
    for raw in (b'{"intent": "echo", "params": {', b"not json", b'{"intent": "echo",}'):
        response = client.post(EXECUTIONS, content=raw, headers={"Content-Type": "application/json"})
        assert_problem(response, 400, "malformed_json")
    assert count(client, tenant_id=t) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"intent": 5, "params": {}, "tenant_id": "t"}, "intent"),
        ({"intent": "echo", "params": "text", "tenant_id": "t"}, "params"),
        ({"intent": "echo", "params": [], "tenant_id": "t"}, "params"),
        ({"intent": "echo", "params": {}, "tenant_id": 7}, "tenant_id"),
        ({"intent": "echo", "params": {}}, "tenant_id"),
        ({"params": {}, "tenant_id": "t"}, "intent"),
        ({"intent": "echo", "params": {}, "tenant_id": "t", "idempotency_key": ""}, "idempotency_key"),
        ({"intent": "echo", "params": {}, "tenant_id": "t", "surprise": 1}, "surprise"),
        ({"intent": "", "params": {}, "tenant_id": "t"}, "intent"),
    ],
)
def test_wrong_types_are_422_with_field_errors(client: httpx.Client, body: dict[str, Any], field: str) -> None:
    problem = assert_problem(client.post(EXECUTIONS, json=body), 422, "invalid_request")
    assert any(error["loc"][-1] == field for error in problem["errors"]), problem["errors"]
    assert all({"loc", "type", "msg"} <= set(error) for error in problem["errors"])


def test_a_json_array_body_is_422(client: httpx.Client) -> None:
    assert_problem(client.post(EXECUTIONS, json=[1, 2]), 422, "invalid_request")


def test_unknown_intent_is_404(client: httpx.Client) -> None:
    t = tenant()
    problem = assert_problem(
        client.post(EXECUTIONS, json={"intent": "no.such.intent", "params": {}, "tenant_id": t}), 404, "unknown_intent"
    )
    assert "no.such.intent" in problem["detail"]
    assert count(client, tenant_id=t) == 0


@pytest.mark.parametrize(
    ("intent", "params", "loc"),
    [
        ("wait", {"seconds": 3601}, ["seconds"]),
        ("wait", {"seconds": "soon"}, ["seconds"]),
        ("wait", {}, ["seconds"]),
        ("text.stats", {"text": ""}, ["text"]),
        ("text.stats", {"text": "fine", "top": 0}, ["top"]),
    ],
)
def test_params_failing_the_schema_are_422_invalid_params(
    client: httpx.Client, intent: str, params: dict[str, Any], loc: list[str]
) -> None:
    t = tenant()
    problem = assert_problem(
        client.post(EXECUTIONS, json={"intent": intent, "params": params, "tenant_id": t}), 422, "invalid_params"
    )
    assert [error["loc"] for error in problem["errors"]] == [loc]
    assert count(client, tenant_id=t) == 0


def test_too_deep_params_are_refused(client: httpx.Client) -> None:
    t = tenant()
    deep: dict[str, Any] = {}
    for _ in range(40):
        deep = {"d": deep}
    response = client.post(EXECUTIONS, json={"intent": "echo", "params": deep, "tenant_id": t})
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert count(client, tenant_id=t) == 0


def test_oversized_body_is_413_and_writes_nothing(client: httpx.Client) -> None:
    t = tenant()
    before = count(client)
    big = {"intent": "echo", "params": {"message": "x" * ONE_MIB}, "tenant_id": t}
    assert_problem(client.post(EXECUTIONS, json=big), 413, "body_too_large")
    assert count(client) == before
    assert count(client, tenant_id=t) == 0
    # Just under the limit is fine.
    fits = {"intent": "echo", "params": {"message": "z" * (ONE_MIB - 1000)}, "tenant_id": t}
    assert client.post(EXECUTIONS, json=fits).status_code == 202


def test_oversized_streamed_body_is_413_and_writes_nothing(client: httpx.Client) -> None:
    """No Content-Length (chunked): the limit must hold while the body streams in."""
    t = tenant()
    before = count(client)

    def chunks():
        yield b'{"intent": "echo", "tenant_id": "' + t.encode() + b'", "params": {"message": "'
        for _ in range(20):
            yield b"y" * 65536
        yield b'"}}'

    streamed = client.post(EXECUTIONS, content=chunks(), headers={"Content-Type": "application/json"})
    assert_problem(streamed, 413, "body_too_large")
    assert count(client) == before
    assert count(client, tenant_id=t) == 0


def test_oversized_body_on_cancel_is_413(client: httpx.Client) -> None:
    made = create(client, "wait", {"seconds": 30}, tenant())
    response = client.post(f"{EXECUTIONS}/{made['execution_id']}/cancel", content=b"x" * (ONE_MIB + 1))
    assert_problem(response, 413, "body_too_large")
    assert client.get(f"{EXECUTIONS}/{made['execution_id']}").json()["cancel_requested"] is False
    client.post(f"{EXECUTIONS}/{made['execution_id']}/cancel")


@pytest.mark.parametrize(
    "query",
    [{"limit": 0}, {"limit": 501}, {"limit": "many"}, {"created_after": "yesterday"}, {"cursor": "garbage"}],
)
def test_bad_list_queries_are_422(client: httpx.Client, query: dict[str, Any]) -> None:
    response = client.get(EXECUTIONS, params=query)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] in ("invalid_request", "invalid_cursor")


def test_bad_event_queries_are_422(client: httpx.Client) -> None:
    made = create(client, "echo", {}, tenant())
    path = f"{EXECUTIONS}/{made['execution_id']}/events"
    assert_problem(client.get(path, params={"after": -2}), 422, "invalid_request")
    assert_problem(client.get(path, params={"after": "x"}), 422, "invalid_request")
    assert_problem(client.get(path, params={"limit": 0}), 422, "invalid_request")


def test_unknown_execution_is_404_everywhere(client: httpx.Client) -> None:
    missing = f"{EXECUTIONS}/00000000-0000-0000-0000-000000000000"
    assert_problem(client.get(missing), 404, "not_found")
    assert_problem(client.post(f"{missing}/cancel"), 404, "not_found")
    assert_problem(client.get(f"{missing}/events"), 404, "not_found")
    assert_problem(client.get(f"{missing}/events", headers={"Accept": "text/event-stream"}), 404, "not_found")


def test_tenant_query_scopes_get_and_cancel(client: httpx.Client) -> None:
    t = tenant()
    made = create(client, "echo", {}, t)["execution_id"]
    assert client.get(f"{EXECUTIONS}/{made}", params={"tenant_id": t}).status_code == 200
    assert_problem(client.get(f"{EXECUTIONS}/{made}", params={"tenant_id": tenant()}), 404, "not_found")
    assert_problem(client.post(f"{EXECUTIONS}/{made}/cancel", params={"tenant_id": tenant()}), 404, "not_found")


def test_session_of_another_tenant_is_refused(runtime: Runtime, client: httpx.Client) -> None:
    assert runtime.data_dir is not None
    owner, other = tenant(), tenant()
    session = sqlite_session(runtime.data_dir, owner)
    response = client.post(EXECUTIONS, json={"intent": "echo", "params": {}, "tenant_id": other, "session_id": session})
    assert_problem(response, 404, "not_found")
    assert count(client, tenant_id=other) == 0


# --- batches ----------------------------------------------------------------------------------

BATCH = f"{EXECUTIONS}/batch"


def test_a_batch_answers_each_item_alone_in_order(runtime: Runtime, client: httpx.Client) -> None:
    assert runtime.data_dir is not None
    t = tenant()
    foreign_session = sqlite_session(runtime.data_dir, tenant())
    items = [
        {"intent": "echo", "params": {"message": "first"}, "tenant_id": t},
        {"intent": "no.such.intent", "params": {}, "tenant_id": t},
        {"intent": "wait", "params": {"seconds": "soon"}, "tenant_id": t},
        {"intent": "echo", "params": {}, "tenant_id": t, "surprise": 1},
        {"intent": "echo", "params": {}, "tenant_id": t, "session_id": foreign_session},
        {"intent": "echo", "params": {"message": "keyed"}, "tenant_id": t, "idempotency_key": "k-1"},
        {"intent": "echo", "params": {"message": "keyed"}, "tenant_id": t, "idempotency_key": "k-1"},
        {"intent": "echo", "params": {"message": "other"}, "tenant_id": t, "idempotency_key": "k-1"},
        "not an object",
    ]
    response = client.post(BATCH, json={"items": items})
    assert response.status_code == 200, response.text
    answers = response.json()["items"]
    assert [a["status"] for a in answers] == [202, 404, 422, 422, 404, 202, 202, 409, 422]
    assert [a["body"].get("code") for a in answers[1:5]] == ["unknown_intent", "invalid_params", "invalid_request",
                                                               "not_found"]
    assert any(error["loc"][-1] == "surprise" for error in answers[3]["body"]["errors"])
    assert answers[7]["body"]["code"] == "idempotency_conflict"
    first, keyed, again = answers[0]["body"], answers[5]["body"], answers[6]["body"]
    # Each success is what POST /executions answers.
    assert first["duplicate"] is False and first["execution"]["params"] == {"message": "first"}
    assert {keyed["duplicate"], again["duplicate"]} == {False, True}
    assert keyed["execution_id"] == again["execution_id"]
    assert wait_for(client, first["execution_id"])["result"] == {"message": "first"}
    assert count(client, tenant_id=t) == 2


@pytest.mark.parametrize("body", [{"items": []}, {"items": [{}] * 257}, {"items": {}}, {}, {"items": [], "x": 1}])
def test_a_malformed_batch_is_422_and_writes_nothing(client: httpx.Client, body: dict[str, Any]) -> None:
    before = count(client)
    assert_problem(client.post(BATCH, json=body), 422, "invalid_request")
    assert count(client) == before


def test_an_admin_batch_creates_in_the_admins_tenant(runtime: Runtime, client: httpx.Client) -> None:
    mine, theirs = tenant(), tenant()
    with runtime.client(token=runtime.admin_token(mine)) as admin:
        response = admin.post(BATCH, json={"items": [{"intent": "echo", "params": {}, "tenant_id": theirs}]})
    assert response.status_code == 200, response.text
    assert response.json()["items"][0]["body"]["execution"]["tenant_id"] == mine
    assert count(client, tenant_id=theirs) == 0


# Integers beyond 64 bits are the whole body's fault (422 before any item is read).
_INTS = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(items=st.lists(st.one_of(
    st.dictionaries(st.sampled_from(["intent", "params", "tenant_id", "session_id", "idempotency_key", "user_id",
                                     "parent_id", "retry_of", "other"]),
                    st.one_of(st.none(), st.text(max_size=40), _INTS, st.sampled_from(["echo", "wait"]),
                              st.dictionaries(st.text(max_size=5), _INTS | st.text(max_size=5), max_size=3))),
    _INTS, st.text(max_size=10)), min_size=1, max_size=8))
def test_generated_batches_get_an_answer_per_item_and_never_a_server_error(
    client: httpx.Client, items: list[Any]
) -> None:
    response = client.post(BATCH, json={"items": items})
    assert response.status_code == 200, response.text
    answers = response.json()["items"]
    assert len(answers) == len(items)
    for answer in answers:
        assert answer["status"] in {202, 404, 409, 422}, answer
        assert answer["status"] == 202 or answer["body"]["code"], answer


# --- idempotency ------------------------------------------------------------------------------


def test_resubmission_with_the_same_key_returns_the_same_execution(client: httpx.Client) -> None:
    t = tenant()
    first = create(client, "echo", {"message": "once"}, t, idempotency_key="order-1")
    assert first["duplicate"] is False
    again = create(client, "echo", {"message": "once"}, t, idempotency_key="order-1")
    assert again["duplicate"] is True
    assert again["execution_id"] == first["execution_id"]
    assert again["execution"]["idempotency_key"] == "order-1"
    done = wait_for(client, first["execution_id"])
    assert done["status"] == "completed" and done["result"] == {"message": "once"}
    # After completion too: same execution, not run again.
    late = create(client, "echo", {"message": "once"}, t, idempotency_key="order-1")
    assert late["duplicate"] is True and late["execution_id"] == first["execution_id"]
    assert late["status"] == "completed"
    assert count(client, tenant_id=t) == 1
    types = [e["type"] for e in events_of(client, first["execution_id"])]
    assert types.count("execution.accepted") == 1 and types.count("execution.completed") == 1


def test_same_key_with_other_params_is_a_conflict(client: httpx.Client) -> None:
    t = tenant()
    first = create(client, "echo", {"message": "one"}, t, idempotency_key="k")
    problem = assert_problem(
        client.post(
            EXECUTIONS, json={"intent": "echo", "params": {"message": "two"}, "tenant_id": t, "idempotency_key": "k"}
        ),
        409,
        "idempotency_conflict",
    )
    assert problem["detail"]
    other_intent = client.post(
        EXECUTIONS, json={"intent": "wait", "params": {"seconds": 1}, "tenant_id": t, "idempotency_key": "k"}
    )
    assert_problem(other_intent, 409, "idempotency_conflict")
    assert count(client, tenant_id=t) == 1
    assert client.get(f"{EXECUTIONS}/{first['execution_id']}").json()["params"] == {"message": "one"}


def test_keys_are_scoped_to_tenant_and_session(runtime: Runtime, client: httpx.Client) -> None:
    assert runtime.data_dir is not None
    t, u = tenant(), tenant()
    session = sqlite_session(runtime.data_dir, t)
    plain = create(client, "echo", {}, t, idempotency_key="same")["execution_id"]
    in_session = create(client, "echo", {}, t, idempotency_key="same", session_id=session)
    other_tenant = create(client, "echo", {}, u, idempotency_key="same")
    assert in_session["duplicate"] is False and other_tenant["duplicate"] is False
    assert len({plain, in_session["execution_id"], other_tenant["execution_id"]}) == 3


def test_concurrent_resubmissions_create_one_execution(runtime: Runtime) -> None:
    t = tenant()

    def submit(_: int) -> dict[str, Any]:
        with runtime.client() as http:
            return create(http, "echo", {"message": "race"}, t, idempotency_key="race")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(submit, range(8)))
    assert len({a["execution_id"] for a in answers}) == 1
    assert [a["duplicate"] for a in answers].count(False) == 1
    with runtime.client() as http:
        assert count(http, tenant_id=t) == 1
        done = wait_for(http, answers[0]["execution_id"])
        assert done["status"] == "completed"
        types = [e["type"] for e in events_of(http, answers[0]["execution_id"])]
    assert types.count("execution.accepted") == 1 and types.count("execution.started") == 1


# --- listing ------------------------------------------------------------------------------------


def test_list_filters(runtime: Runtime, client: httpx.Client) -> None:
    assert runtime.data_dir is not None
    t = tenant()
    session = sqlite_session(runtime.data_dir, t)
    echo_ids = [create(client, "echo", {"i": i}, t, session_id=session, user_id="u1")["execution_id"] for i in range(3)]
    waiting = create(client, "wait", {"seconds": 30}, t, user_id="u2")["execution_id"]
    for execution_id in echo_ids:
        wait_for(client, execution_id)
    wait_for(client, waiting, lambda e: e["status"] == "running")

    def ids(**filters: Any) -> set[str]:
        response = client.get(EXECUTIONS, params={"tenant_id": t, **filters})
        assert response.status_code == 200, response.text
        return {e["execution_id"] for e in response.json()["items"]}

    assert ids() == {*echo_ids, waiting}
    assert ids(intent="echo") == set(echo_ids)
    assert ids(intent="wait") == {waiting}
    assert ids(status="completed") == set(echo_ids)
    assert ids(status="running") == {waiting}
    assert ids(session_id=session) == set(echo_ids)
    assert ids(user_id="u2") == {waiting}
    assert ids(intent="echo", status="running") == set()
    assert ids(intent="text.stats") == set()
    created = sorted(client.get(f"{EXECUTIONS}/{i}").json()["created_at"] for i in echo_ids)
    assert ids(created_after=created[1]) == {*echo_ids[1:], waiting}
    assert ids(created_before=created[1]) == {echo_ids[0]}
    client.post(f"{EXECUTIONS}/{waiting}/cancel")


def test_list_pages_with_a_cursor(client: httpx.Client) -> None:
    t = tenant()
    made = [create(client, "echo", {"i": i}, t)["execution_id"] for i in range(7)]
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"tenant_id": t, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.get(EXECUTIONS, params=params).json()
        pages += 1
        assert len(page["items"]) <= 3
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [e["execution_id"] for e in seen] == list(reversed(made)), "newest first, each exactly once"
    keys = [(e["created_at"], e["execution_id"]) for e in seen]
    assert keys == sorted(keys, reverse=True)


# --- cancel answers ------------------------------------------------------------------------------


def test_cancelling_a_finished_execution_changes_nothing(client: httpx.Client) -> None:
    made = create(client, "echo", {"message": "done"}, tenant())["execution_id"]
    wait_for(client, made)
    response = client.post(f"{EXECUTIONS}/{made}/cancel")
    assert response.status_code == 202
    assert response.json() == {"execution_id": made, "status": "completed", "cancel_requested": False}
    assert client.get(f"{EXECUTIONS}/{made}").json()["status"] == "completed"
    assert [e["type"] for e in events_of(client, made)][-1] == "execution.completed"


# --- intents catalog ---------------------------------------------------------------------------------


def test_intents_publish_their_json_schema(client: httpx.Client) -> None:
    items = {item["name"]: item for item in client.get("/api/runtime/intents").json()["items"]}
    assert {"echo", "wait", "text.stats", "test.flaky", "test.saga"} <= set(items)
    assert "agent.turn" not in items
    wait = items["wait"]
    assert wait["description"] and wait["examples"]
    assert wait["params_schema"]["properties"]["seconds"]["maximum"] == 3600
    assert wait["params_schema"]["required"] == ["seconds"]
    assert wait["result_schema"]["properties"]["waited"]["type"] == "number"
    stats = items["text.stats"]
    assert set(stats["result_schema"]["properties"]) >= {"words", "sentences", "top_keywords"}
    assert items["test.flaky"]["retry"] == {"attempts": 4, "interval": 0.2, "backoff": 3.0}
    assert items["test.slow"]["timeout"] == 1.0
    hidden = {item["name"] for item in client.get("/api/runtime/intents", params={"all": "true"}).json()["items"]}
    assert "agent.turn" in hidden


def test_text_stats_runs(client: httpx.Client) -> None:
    text = "Durable runs are durable. Runs resume! Do they? Yes, durable runs resume."
    made = create(client, "text.stats", {"text": text, "top": 2}, tenant())
    done = wait_for(client, made["execution_id"])
    assert done["status"] == "completed", done
    result = done["result"]
    assert result["words"] == 12 and result["sentences"] == 4
    assert result["top_keywords"] == [{"word": "durable", "count": 3}, {"word": "runs", "count": 3}]
    assert done["progress"] == 1.0
