"""``AgentSocket``: the agent WebSocket, with reconnect and resume by ``seq``.

Iterate it for session events (each once, in ``seq`` order, across
reconnects) and unsolicited ``error`` messages. Requests (``send_message``,
``submit``, ``cancel``, ``ping``) return the server's ``ack``/``pong``.

When the connection drops, it reconnects with exponential backoff and jitter,
cycling through the base URLs, and resumes after the last ``seq`` it yielded.
Close codes 4401 / 4403 / 4400 / 1009 are final: the iterator and every
pending request raise ``SessionRevoked`` / ``OriginRejected`` /
``ProtocolViolation``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from intentd.client.errors import (
    ConnectionFailed,
    Disconnected,
    IntentdError,
    OriginRejected,
    ProtocolViolation,
    SessionRevoked,
    SocketClosed,
)

if TYPE_CHECKING:
    from intentd.client.http import AsyncClient

JSON = dict[str, Any]
TERMINAL_EVENTS = {"execution.completed": "completed", "execution.failed": "failed", "execution.cancelled": "cancelled"}
_FINAL_CLOSES: dict[int, tuple[type[SocketClosed], str]] = {
    4401: (SessionRevoked, "unauthorized"),
    4403: (OriginRejected, "origin_not_allowed"),
    4400: (ProtocolViolation, "protocol_errors"),
    1009: (ProtocolViolation, "frame_too_big"),
}
_REMEMBERED_OUTCOMES = 1000
MAX_FRAME = 16 * 1024 * 1024


@dataclass(frozen=True)
class Backoff:
    """Delays between reconnection attempts: exponential, capped, with jitter."""

    initial: float = 0.2
    maximum: float = 10.0
    factor: float = 2.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.maximum, self.initial * self.factor**attempt)
        # half fixed, half random: spreads a crowd of clients after a restart
        return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass
class _Request:
    message: JSON
    future: asyncio.Future[JSON]
    resend: bool  # safe to send again after a reconnect (idempotent on the server)
    sent_on: ClientConnection | None = None


class _End:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class AgentSocket:
    def __init__(
        self,
        urls: Sequence[str],
        session_token: str,
        *,
        after_seq: int | None = 0,
        client: AsyncClient | None = None,
        backoff: Backoff | None = None,
        max_retries: int | None = None,
        open_timeout: float = 10.0,
        request_timeout: float = 30.0,
    ) -> None:
        if not urls:
            raise ValueError("give at least one URL")
        self.urls = list(urls)
        self.session_id: str | None = None
        self.last_seq: int | None = after_seq
        self.reconnects = 0
        self._token = session_token
        self._client = client
        self._backoff = backoff or Backoff()
        self._max_retries = max_retries
        self._open_timeout = open_timeout
        self._request_timeout = request_timeout
        self._url_index = 0
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._queue: asyncio.Queue[JSON | _End] = asyncio.Queue()
        self._requests: dict[str, _Request] = {}
        self._outcomes: OrderedDict[str, JSON] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Future[JSON]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._closing = False

    # -- lifecycle ----------------------------------------------------------

    async def connect(self) -> None:
        """Open the first connection: each URL is tried once; auth failures raise."""
        failures = []
        for _ in self.urls:
            url = self.urls[self._url_index]
            try:
                self._ws = await self._open(url)
                break
            except SocketClosed:
                raise
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed, IntentdError) as exc:
                failures.append(f"{url}: {exc.__class__.__name__}: {exc}")
                self._url_index = (self._url_index + 1) % len(self.urls)
        else:
            raise ConnectionFailed("cannot open the agent socket: " + "; ".join(failures))
        self._connected.set()
        self._reader = asyncio.create_task(self._read_forever(), name="intentd-agent-socket")

    async def close(self) -> None:
        """Close for good; the iterator stops and pending requests raise ``Disconnected``."""
        if self._closing:
            return
        self._closing = True
        self._connected.clear()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._ws is not None:
            await self._ws.close()
        self._finish(None)

    async def __aenter__(self) -> AgentSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def _open(self, url: str) -> ClientConnection:
        """Connect, authenticate with the first message, and wait for ``ready``."""
        target = url if self.last_seq is None else f"{url}?after_seq={self.last_seq}"
        ws = await connect(
            target,
            open_timeout=self._open_timeout,
            max_size=MAX_FRAME,
            ping_interval=20,
            ping_timeout=40,
            user_agent_header="intentd-client",
        )
        try:
            await ws.send(json.dumps({"type": "auth", "session_token": self._token}))
            first = _object(await asyncio.wait_for(ws.recv(), self._open_timeout))
            if first.get("type") == "error":
                # the server explains, then closes with the code that says whether to retry
                with contextlib.suppress(ConnectionClosed, TimeoutError):
                    await asyncio.wait_for(ws.recv(), self._open_timeout)
                raise self._closed_error(ws.close_code, first) or ConnectionClosedEarly(first)
            if first.get("type") != "ready":
                raise ConnectionClosedEarly(first)
        except ConnectionClosed:
            raise self._closed_error(ws.close_code, None) or ConnectionClosedEarly(None) from None
        except ValueError:
            await ws.close()
            raise ConnectionClosedEarly(None) from None
        except BaseException:
            await ws.close()
            raise
        self.session_id = first.get("session_id")
        if self.last_seq is None:
            self.last_seq = int(first.get("last_seq") or 0)
        return ws

    @staticmethod
    def _closed_error(close_code: int | None, message: JSON | None) -> SocketClosed | None:
        final = _FINAL_CLOSES.get(close_code or 0)
        if final is None:
            return None
        error_class, code = final
        detail = (message or {}).get("message") or f"the server closed the socket with {close_code}"
        return error_class(close_code, (message or {}).get("code") or code, detail)

    async def _read_forever(self) -> None:
        error: BaseException | None = None
        try:
            while True:
                ws = self._ws
                assert ws is not None
                try:
                    async for raw in ws:
                        self._dispatch(raw)
                except ConnectionClosed:
                    pass
                self._connected.clear()
                final = self._closed_error(ws.close_code, None)
                if final is not None:
                    error = final
                    return
                self._drop_unsafe_requests()
                # a server that is busy (1013) or limiting us (4429) is not retried at once
                self._ws = await self._reconnect(first_attempt=4 if ws.close_code in (1013, 4429) else 0)
                self.reconnects += 1
                self._connected.set()
                for request in list(self._requests.values()):
                    await self._transmit(request)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # reported to the iterator, not lost in a task
            error = exc
        finally:
            if not self._closing:
                self._finish(error)

    async def _reconnect(self, first_attempt: int = 0) -> ClientConnection:
        attempt = first_attempt
        while True:
            self._url_index = (self._url_index + 1) % len(self.urls)
            await asyncio.sleep(self._backoff.delay(attempt))
            attempt += 1
            try:
                return await self._open(self.urls[self._url_index])
            except SocketClosed:
                raise
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed, IntentdError) as exc:
                if self._max_retries is not None and attempt - first_attempt >= self._max_retries:
                    raise ConnectionFailed(f"gave up reconnecting after {attempt} attempts: {exc}") from exc

    def _finish(self, error: BaseException | None) -> None:
        self._error = error
        self._connected.clear()
        failure = error or Disconnected("the socket is closed")
        for request in self._requests.values():
            if not request.future.done():
                request.future.set_exception(failure)
        self._requests.clear()
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(failure)
        self._waiters.clear()
        self._queue.put_nowait(_End(error))

    def _drop_unsafe_requests(self) -> None:
        """Fail the requests the lost connection may or may not have delivered, unless re-sending is safe."""
        for request_id, request in list(self._requests.items()):
            if not request.resend and request.sent_on is not None:
                del self._requests[request_id]
                if not request.future.done():
                    request.future.set_exception(Disconnected())

    # -- incoming -----------------------------------------------------------

    def _dispatch(self, raw: str | bytes) -> None:
        try:
            message = _object(raw)
        except ValueError:
            return  # not ours to interpret: the protocol only sends JSON objects
        kind = message.get("type")
        if kind in ("ack", "pong"):
            request = self._requests.pop(str(message.get("id")), None)
            if request is not None and not request.future.done():
                request.future.set_result(message)
            return
        if kind == "error":
            request = self._requests.pop(str(message.get("reply_to")), None)
            if request is not None:
                if not request.future.done():
                    request.future.set_exception(
                        IntentdError(None, str(message.get("code")), str(message.get("message", "")), message)
                    )
            elif message.get("code") not in ("unauthorized", "origin_not_allowed"):
                self._queue.put_nowait(message)  # those two come with a final close, raised instead
            return
        if kind == "ready":
            return
        seq = message.get("seq")
        if isinstance(seq, int):
            if self.last_seq is not None and seq <= self.last_seq:
                return  # already yielded before a reconnect
            self.last_seq = seq
            self._note_outcome(message)
        self._queue.put_nowait(message)

    def _note_outcome(self, event: JSON) -> None:
        status = TERMINAL_EVENTS.get(str(event.get("type")))
        execution_id = event.get("execution_id")
        if status is None or not execution_id:
            return
        data = event.get("data") or {}
        outcome = {
            "execution_id": execution_id,
            "status": status,
            "result": data.get("result") if status == "completed" else None,
            "error": {"code": data.get("code"), "message": data.get("message")} if status == "failed" else None,
        }
        self._outcomes[execution_id] = outcome
        while len(self._outcomes) > _REMEMBERED_OUTCOMES:
            self._outcomes.popitem(last=False)
        for waiter in self._waiters.pop(execution_id, []):
            if not waiter.done():
                waiter.set_result(outcome)

    def __aiter__(self) -> AgentSocket:
        return self

    async def __anext__(self) -> JSON:
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # every later call ends the same way
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return item

    # -- requests -----------------------------------------------------------

    async def _request(self, message: JSON, *, resend: bool, timeout: float | None = None) -> JSON:
        if self._error is not None:
            raise self._error
        if self._closing:
            raise Disconnected("the socket is closed")
        request_id = uuid.uuid4().hex
        message = {**message, "id": request_id}
        future: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        request = self._requests[request_id] = _Request(message, future, resend)
        try:
            async with asyncio.timeout(timeout or self._request_timeout):
                if not self._connected.is_set():
                    # wait for a reconnect (which sends it), unless the socket fails for good meanwhile
                    reconnected = asyncio.ensure_future(self._connected.wait())
                    try:
                        await asyncio.wait({reconnected, future}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        reconnected.cancel()
                await self._transmit(request)
                return await future
        finally:
            self._requests.pop(request_id, None)

    async def _transmit(self, request: _Request) -> None:
        """Send ``request`` on the current connection, once per connection."""
        ws = self._ws
        if ws is None or not self._connected.is_set() or request.sent_on is ws or request.future.done():
            return
        request.sent_on = ws
        # a send on a dropped connection fails silently: the reader sees the drop and
        # re-sends the request or fails it (see _drop_unsafe_requests)
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(request.message))

    async def send_message(self, text: str) -> JSON:
        """Say something to the agent; the ack's ``execution_id`` is the turn's execution."""
        return await self._request({"type": "message", "text": text}, resend=False)

    async def submit(self, intent: str, params: JSON | None = None, idempotency_key: str | None = None) -> JSON:
        """Start an intent; the ack carries ``execution_id`` and ``duplicate``.

        Without a key, one is generated, so the request survives a reconnect
        without running twice.
        """
        message = {
            "type": "intent",
            "intent": intent,
            "params": params or {},
            "idempotency_key": idempotency_key or f"sdk-{uuid.uuid4().hex}",
        }
        return await self._request(message, resend=True)

    async def cancel(self, execution_id: str) -> JSON:
        return await self._request({"type": "cancel", "execution_id": execution_id}, resend=True)

    async def resume(self, after_seq: int) -> None:
        """Ask the server to replay from ``after_seq`` (events already yielded are still skipped)."""
        if self._ws is None:
            raise Disconnected("not connected")
        await self._ws.send(json.dumps({"type": "resume", "after_seq": after_seq}))

    async def ping(self) -> float:
        """Round trip to the server, in seconds."""
        started = time.monotonic()
        await self._request({"type": "ping"}, resend=False)
        return time.monotonic() - started

    async def wait_for_execution(self, execution_id: str, timeout: float | None = None) -> JSON:
        """{execution_id, status, result, error} once the execution has finished.

        Uses the session's events, and the REST API once for an execution that
        finished before this socket saw it.
        """
        if execution_id in self._outcomes:
            return self._outcomes[execution_id]
        if self._error is not None:
            raise self._error
        waiter: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(execution_id, []).append(waiter)
        try:
            async with asyncio.timeout(timeout):
                if self._client is not None:
                    with contextlib.suppress(IntentdError):
                        execution = await self._client.execution(execution_id)
                        if execution["status"] in TERMINAL_EVENTS.values() and not waiter.done():
                            return {key: execution.get(key) for key in ("execution_id", "status", "result", "error")}
                return await waiter
        finally:
            waiters = self._waiters.get(execution_id, [])
            if waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiters[execution_id]


def _object(raw: str | bytes) -> JSON:
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


class ConnectionClosedEarly(IntentdError):
    """The server answered the handshake with something other than ``ready`` (retried)."""

    def __init__(self, message: JSON | None) -> None:
        detail = json.dumps(message) if message else "the socket closed before ready"
        super().__init__(None, str((message or {}).get("code") or "not_ready"), detail)
