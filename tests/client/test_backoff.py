"""Reconnection delays: exponential, capped, jittered."""

from __future__ import annotations

from intentd.client import Backoff


def test_delays_grow_then_cap_and_stay_within_the_jitter_band() -> None:
    backoff = Backoff(initial=0.2, maximum=5.0, factor=2.0)
    for attempt, ceiling in [(0, 0.2), (1, 0.4), (2, 0.8), (4, 3.2), (5, 5.0), (30, 5.0)]:
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1, "jittered: clients reconnecting together spread out"
