"""Redis pub/sub bus for distributed mode.

One publishing client and one subscriber connection per process; messages
published together travel as one JSON array. When Redis goes away,
``healthy`` turns false (subscribers then poll the event log) and a background
task reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis.asyncio as aioredis
import structlog

from intentd.bus import CONTROL, EVENTS, Handler, Unsubscribe
from intentd.bus._handlers import Handlers

log = structlog.get_logger("intentd.bus")



def channel_prefix(url: str) -> str:
    """Pub/sub channels ignore Redis's database number; put it in the channel name.

    So deployments (and test runs) on different database numbers of one Redis
    never hear each other.
    """
    db = urlsplit(url).path.strip("/") or "0"
    return f"intentd:{db}:"


class RedisBus:
    def __init__(self, url: str, *, topics: tuple[str, ...] = (EVENTS, CONTROL)) -> None:
        self.url = url
        self.prefix = channel_prefix(url)
        self.healthy = False
        self._topics = topics
        self._handlers = Handlers()
        self._client = aioredis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=2, health_check_interval=5
        )
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="redis-bus")
        try:  # a bus that is up at start is used at once; one that is not is retried
            await asyncio.wait_for(self._connected.wait(), 3)
        except TimeoutError:
            log.warning("redis unreachable at start; live events will come from the event log")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._client.aclose()

    async def publish(self, topic: str, *messages: dict[str, Any]) -> None:
        if not messages:
            return
        # Several messages travel as one JSON array: one command, one delivery per subscriber.
        payload = orjson.dumps(messages[0] if len(messages) == 1 else messages)
        try:
            await self._client.publish(self.prefix + topic, payload)
        except (aioredis.RedisError, OSError) as exc:
            # Health is the listener's to judge (it reconnects and says so);
            # one failed publish on a stale connection must not silence us.
            log.warning("redis publish failed", topic=topic, error=str(exc))

    def subscribe(self, topic: str, handler: Handler) -> Unsubscribe:
        if topic not in self._topics:
            raise ValueError(f"unknown bus topic {topic!r}")
        return self._handlers.add(topic, handler)

    async def _listen_forever(self) -> None:
        delay = 0.1
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*(self.prefix + topic for topic in self._topics))
                self.healthy = True
                self._connected.set()
                delay = 0.1
                log.info("redis bus connected")
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        await pubsub.ping()
                        continue
                    if message["type"] != "message":
                        continue
                    topic = message["channel"].decode()[len(self.prefix) :]
                    data = orjson.loads(message["data"])
                    for one in data if isinstance(data, list) else (data,):
                        self._handlers.dispatch(topic, one)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.healthy:
                    log.warning("redis bus lost", error=str(exc))
                self.healthy = False
                self._connected.clear()
                await asyncio.sleep(delay + random.random() * delay)
                delay = min(delay * 2, 2.0)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:
                    pass
