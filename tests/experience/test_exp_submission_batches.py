"""How the experience plane groups submissions into POST /executions/batch requests (``submission_batches``, ``intentd.batches``)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from intentd.config import Settings
from intentd.experience.runtime_client import BATCH_MAX_ITEMS, RuntimeClient, submission_batches
from intentd.problems import Problem


class Runtime:
    """A ``send`` that records each batch and answers when released."""

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail_with: Exception | None = None

    async def send(self, items: list[bytes]) -> list[dict[str, Any] | Problem]:
        self.batches.append(items)
        await self.release.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return [{"echo": item.decode()} for item in items]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_at_light_load_each_submission_goes_alone_at_once() -> None:
    runtime = Runtime()
    batches = submission_batches(runtime.send, slots=2, max_bytes=1000)
    for n in range(3):
        assert await batches.submit(b"%d" % n) == {"echo": str(n)}
    assert runtime.batches == [[b"0"], [b"1"], [b"2"]]


async def test_a_submission_made_as_the_last_batch_ends_gets_a_sender() -> None:
    runtime = Runtime()
    batches = submission_batches(runtime.send, slots=1, max_bytes=1000)
    assert await batches.submit(b"a") == {"echo": "a"}
    # Resumed by its answer, this caller submits again before the loop has
    # run the finished sender's done callbacks: the one slot must be free.
    async with asyncio.timeout(2):  # in this task: ``wait_for`` would start another, a loop turn later
        assert await batches.submit(b"b") == {"echo": "b"}
    assert runtime.batches == [[b"a"], [b"b"]]


async def test_submissions_waiting_for_a_slot_go_together_in_order() -> None:
    runtime = Runtime()
    runtime.release.clear()
    batches = submission_batches(runtime.send, slots=1, max_bytes=1000)
    first = asyncio.create_task(batches.submit(b"a"))
    await settle()
    rest = [asyncio.create_task(batches.submit(item)) for item in (b"b", b"c", b"d")]
    await settle()
    assert runtime.batches == [[b"a"]]  # the one slot is busy: the others wait
    runtime.release.set()
    assert [await task for task in (first, *rest)] == [{"echo": x} for x in "abcd"]
    assert runtime.batches == [[b"a"], [b"b", b"c", b"d"]]


async def test_a_batch_keeps_within_the_byte_and_item_limits() -> None:
    runtime = Runtime()
    runtime.release.clear()
    batches = submission_batches(runtime.send, slots=1, max_bytes=25)
    tasks = [asyncio.create_task(batches.submit(b"x" * 10)) for _ in range(5)]
    big = asyncio.create_task(batches.submit(b"y" * 40))  # over the limit alone: sent alone
    await settle()
    runtime.release.set()
    await asyncio.gather(*tasks, big)
    # Queued before the first request left: 25 bytes make two items, not three.
    assert [len(batch) for batch in runtime.batches] == [2, 2, 1, 1]
    assert runtime.batches[-1] == [b"y" * 40]

    runtime = Runtime()
    runtime.release.clear()
    batches = submission_batches(runtime.send, slots=1, max_bytes=1 << 20)
    tasks = [asyncio.create_task(batches.submit(b"z")) for _ in range(BATCH_MAX_ITEMS + 11)]
    await settle()
    runtime.release.set()
    await asyncio.gather(*tasks)
    assert [len(batch) for batch in runtime.batches] == [BATCH_MAX_ITEMS, 11]


async def test_a_failed_request_fails_its_submissions_only() -> None:
    runtime = Runtime()
    runtime.release.clear()
    runtime.fail_with = Problem(503, "unavailable", "the runtime plane is unreachable")
    batches = submission_batches(runtime.send, slots=1, max_bytes=1000)
    doomed = [asyncio.create_task(batches.submit(item)) for item in (b"a", b"b")]
    await settle()
    runtime.release.set()
    for task in doomed:
        with pytest.raises(Problem) as raised:
            await task
        assert raised.value.code == "unavailable"
    runtime.fail_with = None
    assert await batches.submit(b"c") == {"echo": "c"}


async def test_a_submitter_that_goes_away_does_not_disturb_the_others() -> None:
    runtime = Runtime()
    runtime.release.clear()
    batches = submission_batches(runtime.send, slots=1, max_bytes=1000)
    tasks = [asyncio.create_task(batches.submit(item)) for item in (b"a", b"b", b"c")]
    await settle()
    tasks[1].cancel()
    runtime.release.set()
    assert await tasks[0] == {"echo": "a"} and await tasks[2] == {"echo": "c"}
    assert tasks[1].cancelled()


@pytest.mark.parametrize("answer", [
    {"items": []},
    {"items": [{"status": 202, "body": {}}, {"status": 202, "body": {}}]},
    {"items": [{"body": {}}]},
    {"items": "nope"},
    {},
])
async def test_a_batch_answer_of_the_wrong_shape_is_a_bad_gateway(answer: dict[str, Any]) -> None:
    def runtime(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answer)

    client = RuntimeClient(Settings(), transport=httpx.MockTransport(runtime))
    try:
        with pytest.raises(Problem) as raised:
            await client.submit(intent="echo", params={}, tenant_id="t", user_id=None, session_id=None)
        assert (raised.value.status, raised.value.code) == (502, "bad_gateway")
    finally:
        await client.close()


async def test_each_item_answer_becomes_a_result_or_its_problem() -> None:
    answers = iter([
        {"status": 202, "body": {"execution_id": "e-1", "status": "accepted", "duplicate": False}},
        {"status": 404, "body": {"code": "unknown_intent", "detail": "unknown intent 'x'"}},
        {"status": 500, "body": {"code": "internal_error", "detail": "oops"}},
    ])

    def runtime(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/runtime/executions/batch"
        return httpx.Response(200, json={"items": [next(answers)]})

    client = RuntimeClient(Settings(), transport=httpx.MockTransport(runtime))
    try:
        created = await client.submit(intent="echo", params={}, tenant_id="t", user_id=None, session_id=None)
        assert created["execution_id"] == "e-1"
        with pytest.raises(Problem) as relayed:
            await client.submit(intent="x", params={}, tenant_id="t", user_id=None, session_id=None)
        assert (relayed.value.status, relayed.value.code) == (404, "unknown_intent")
        with pytest.raises(Problem) as fault:  # the runtime's own fault is not the caller's
            await client.submit(intent="echo", params={}, tenant_id="t", user_id=None, session_id=None)
        assert (fault.value.status, fault.value.code) == (502, "bad_gateway")
    finally:
        await client.close()
