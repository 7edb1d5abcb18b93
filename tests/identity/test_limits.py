"""Rate limits: in-process and Redis counters, fallback when Redis is down, socket limits."""

from __future__ import annotations

import secrets

import pytest
from harness import free_port
from identity_helpers import inside_one_window

from intentd.config import Settings
from intentd.experience.limits import Limiter
from intentd.problems import Problem


async def test_local_counter_limits_and_answers_the_wait():
    inside_one_window(needed=5)
    limiter = Limiter(Settings())
    assert [await limiter.hit("k", 3, 60) for _ in range(3)] == [None, None, None]
    wait = await limiter.hit("k", 3, 60)
    assert wait is not None and 0 < wait <= 60
    assert await limiter.hit("other", 3, 60) is None


async def test_redis_counters_are_shared_between_limiters(redis_url, unique_prefix):
    inside_one_window(needed=5)
    settings = Settings(redis_url=redis_url)
    first, second = Limiter(settings, prefix=unique_prefix), Limiter(settings, prefix=unique_prefix)
    try:
        assert await first.hit("shared", 2, 60) is None
        assert await second.hit("shared", 2, 60) is None
        assert await first.hit("shared", 2, 60) is not None  # the third, counted across both
        assert await second.blocked("shared", 2, 60) is not None
    finally:
        await first.close()
        await second.close()


async def test_redis_down_falls_back_to_process_counters():
    inside_one_window(needed=5)
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    limiter = Limiter(settings, prefix=f"t{secrets.token_hex(4)}:")
    try:
        results = [await limiter.hit("k", 2, 60) for _ in range(3)]
    finally:
        await limiter.close()
    assert results[:2] == [None, None] and results[2] is not None


async def test_login_lock_counts_failures_per_account_and_per_address():
    inside_one_window(needed=5)
    limiter = Limiter(Settings(login_failures_per_account=2, login_failures_per_ip=3))
    await limiter.check_login("a@example.com", "1.1.1.1")
    for _ in range(2):
        await limiter.login_failed("A@Example.com ", "1.1.1.1")
    with pytest.raises(Problem) as locked:
        await limiter.check_login("a@example.com", "2.2.2.2")
    assert locked.value.status == 429 and locked.value.code == "rate_limited"
    assert 1 <= int(locked.value.headers["Retry-After"]) <= 60
    await limiter.check_login("b@example.com", "2.2.2.2")
    await limiter.login_failed("c@example.com", "1.1.1.1")  # third failure from 1.1.1.1
    with pytest.raises(Problem):
        await limiter.check_login("b@example.com", "1.1.1.1")


async def test_intent_submissions_per_session():
    inside_one_window(needed=5)
    limiter = Limiter(Settings(intents_per_minute=2))
    await limiter.check_intent_submission("s1")
    await limiter.check_intent_submission("s1")
    with pytest.raises(Problem) as limited:
        await limiter.check_intent_submission("s1")
    assert limited.value.code == "rate_limited" and "Retry-After" in limited.value.headers
    await limiter.check_intent_submission("s2")


def test_socket_messages_limited_then_closed_when_sustained():
    limiter = Limiter(Settings(socket_messages_per_second=5))
    verdicts = [limiter.socket_message("s1") for _ in range(11)]
    assert verdicts == ["ok"] * 5 + ["limited"] * 5 + ["close"]
    assert limiter.socket_message("s2") == "ok"


def test_socket_slots_per_session_and_per_process():
    limiter = Limiter(Settings(sockets_per_session=2, sockets_per_process=3))
    slots = limiter.sockets
    assert slots.acquire("a") is None and slots.acquire("a") is None
    refused = slots.acquire("a")
    assert refused is not None and refused.code == "rate_limited" and refused.close_code == 4429
    assert slots.acquire("b") is None
    full = slots.acquire("c")
    assert full is not None and full.code == "at_capacity" and full.close_code == 1013
    slots.release("a")
    assert slots.acquire("c") is None
    assert slots.total == 3
