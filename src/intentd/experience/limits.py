"""Abuse limits with stable error codes.

``Limiter.hit(key, limit, window)`` counts an event in a fixed window and
answers the seconds until the window ends when the count is over the limit
(None while under it). With ``redis_url`` the counters live in Redis (INCR +
EXPIRE on a key per window) so all replicas share them; when Redis does not
answer, the process falls back to its own counters and tries Redis again a few
seconds later: a Redis outage weakens the limits, it never blocks logins.

Socket limits (messages per second, sockets per session and per process) are
per process on purpose: they guard this process's event loop, and a Redis
round trip per frame would cost more than the frame.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as aioredis
import structlog

from intentd.config import Settings
from intentd.problems import Problem

log = structlog.get_logger("intentd.limits")

KEY_PREFIX = "intentd:rl:"
LOGIN_WINDOW = 60.0
INTENT_WINDOW = 60.0
_REDIS_RETRY_AFTER = 5.0
_SWEEP_AT = 10_000


class LocalCounters:
    """Fixed-window counters in this process's memory."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[float, int]] = {}  # key -> (window end, count)

    def add(self, key: str, window: float, amount: int, now: float) -> tuple[int, float]:
        """Add ``amount`` and return (count, seconds left in the window)."""
        end, count = self._counts.get(key, (0.0, 0))
        if end <= now:
            if len(self._counts) > _SWEEP_AT:
                self._counts = {k: v for k, v in self._counts.items() if v[0] > now}
            end, count = (math.floor(now / window) + 1) * window, 0
        count += amount
        self._counts[key] = (end, count)
        return count, end - now


class Limiter:
    def __init__(self, settings: Settings, *, redis_url: str | None = None, prefix: str = KEY_PREFIX) -> None:
        self.settings = settings
        self._prefix = prefix
        self._local = LocalCounters()
        url = redis_url if redis_url is not None else settings.redis_url
        self._redis: Any = (
            aioredis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5) if url else None
        )
        self._redis_down_until = 0.0
        self.sockets = SocketSlots(settings)
        self._message_rates: dict[str, _Burst] = {}

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    async def hit(self, key: str, limit: int, window: float) -> float | None:
        """Count one event; the seconds to wait when that makes more than ``limit`` in the window."""
        count, left = await self._add(key, window, 1)
        return left if count > limit else None

    async def blocked(self, key: str, limit: int, window: float) -> float | None:
        """Without counting: the seconds to wait when ``limit`` events already happened in the window."""
        count, left = await self._add(key, window, 0)
        return left if count >= limit else None

    async def _add(self, key: str, window: float, amount: int) -> tuple[int, float]:
        now = time.time()
        if self._redis is not None and now >= self._redis_down_until:
            index = math.floor(now / window)
            redis_key = f"{self._prefix}{key}:{int(window)}:{index}"
            left = (index + 1) * window - now
            try:
                if amount:
                    pipe = self._redis.pipeline(transaction=True)
                    pipe.incrby(redis_key, amount)
                    pipe.expire(redis_key, math.ceil(window) + 1)
                    count, _ = await pipe.execute()
                else:
                    count = int(await self._redis.get(redis_key) or 0)
                return int(count), left
            except (aioredis.RedisError, OSError) as exc:
                self._redis_down_until = now + _REDIS_RETRY_AFTER
                log.warning("redis unreachable, rate limits are per process for now", error=str(exc))
        return self._local.add(key, window, amount, now)

    # -- login -------------------------------------------------------------

    async def check_login(self, email: str, ip: str) -> None:
        """Raise 429 ``rate_limited`` when the account or the address had too many failures."""
        waits = [
            await self.blocked(_account_key(email), self.settings.login_failures_per_account, LOGIN_WINDOW),
            await self.blocked(f"login-ip:{ip}", self.settings.login_failures_per_ip, LOGIN_WINDOW),
        ]
        wait = max((w for w in waits if w is not None), default=None)
        if wait is not None:
            raise rate_limited(wait, "too many failed logins; try again later")

    async def login_failed(self, email: str, ip: str) -> None:
        await self.hit(_account_key(email), self.settings.login_failures_per_account, LOGIN_WINDOW)
        await self.hit(f"login-ip:{ip}", self.settings.login_failures_per_ip, LOGIN_WINDOW)

    async def check_registration(self, ip: str) -> None:
        wait = await self.hit(f"register-ip:{ip}", self.settings.login_failures_per_ip, LOGIN_WINDOW)
        if wait is not None:
            raise rate_limited(wait, "too many registrations from this address; try again later")

    # -- intents -----------------------------------------------------------

    async def intent_submitted(self, session_id: str) -> float | None:
        """Count an intent submission of a session (REST or socket); retry-after when over the limit."""
        return await self.hit(f"intents:{session_id}", self.settings.intents_per_minute, INTENT_WINDOW)

    async def check_intent_submission(self, session_id: str) -> None:
        """``intent_submitted`` for REST: raises 429 ``rate_limited`` with Retry-After."""
        wait = await self.intent_submitted(session_id)
        if wait is not None:
            raise rate_limited(wait, "too many intents submitted in this session; try again later")

    # -- socket messages ---------------------------------------------------

    def socket_message(self, session_id: str) -> MessageVerdict:
        """Judge one client frame of a session's sockets (all sockets of the session together).

        Up to ``socket_messages_per_second`` frames in a second are ``ok``; the
        next as many are ``limited`` (answer ``error`` rate_limited, don't act);
        a client still sending after that is sustained abuse: ``close`` (4429).
        """
        now = time.monotonic()
        limit = self.settings.socket_messages_per_second
        burst = self._message_rates.get(session_id)
        if burst is None or now - burst.started >= 1.0:
            if len(self._message_rates) > _SWEEP_AT:
                self._message_rates = {k: v for k, v in self._message_rates.items() if now - v.started < 1.0}
            burst = self._message_rates[session_id] = _Burst(now)
        burst.count += 1
        if burst.count <= limit:
            return "ok"
        return "limited" if burst.count <= 2 * limit else "close"


MessageVerdict = Literal["ok", "limited", "close"]


@dataclass(slots=True)
class _Burst:
    started: float
    count: int = 0


@dataclass(frozen=True, slots=True)
class SocketRefusal:
    code: str  # the `error` message's code
    message: str
    close_code: int


class SocketSlots:
    """Live sockets per session and per process.

    ``acquire`` before accepting a socket's first message, ``release`` exactly
    once when it closes.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._per_session: dict[str, int] = {}
        self.total = 0

    def acquire(self, session_id: str) -> SocketRefusal | None:
        if self.total >= self.settings.sockets_per_process:
            return SocketRefusal("at_capacity", "this server has no room for another socket", 1013)
        if self._per_session.get(session_id, 0) >= self.settings.sockets_per_session:
            return SocketRefusal("rate_limited", "too many open sockets for this session", 4429)
        self._per_session[session_id] = self._per_session.get(session_id, 0) + 1
        self.total += 1
        return None

    def release(self, session_id: str) -> None:
        count = self._per_session.get(session_id, 0)
        if count <= 0:
            return
        self.total -= 1
        if count == 1:
            del self._per_session[session_id]
        else:
            self._per_session[session_id] = count - 1


def rate_limited(wait: float, detail: str) -> Problem:
    retry_after = max(1, math.ceil(wait))
    return Problem(429, "rate_limited", detail, headers={"Retry-After": str(retry_after)}, retry_after=retry_after)


def _account_key(email: str) -> str:
    # Hashed: the counters' key names should not list who is being attacked.
    return "login-account:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def limiter_for(app: Any) -> Limiter:
    """The app's limiter: ``app.state.experience.limiter`` when the state has one, else one made on first use."""
    state = app.state.experience
    limiter = getattr(state, "limiter", None) or getattr(app.state, "intentd_limiter", None)
    if limiter is None:
        limiter = app.state.intentd_limiter = Limiter(state.settings)
    return limiter
