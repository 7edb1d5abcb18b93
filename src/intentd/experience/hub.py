"""Live delivery of session events to the sockets of this process.

The hub subscribes once to the bus (``events`` and ``control``) and hands each
event to the connections of its session. Every connection delivers strictly by
``seq``: it drops what it has delivered already and fills any gap from the
event log, so a replay followed by live events has no gap and no duplicate,
even when events arrive while the replay runs. The bus is only a doorbell; the
log is the truth. When the bus is unhealthy the hub polls the log instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
import structlog

from intentd.bus import CONTROL, EVENTS, Bus, Unsubscribe
from intentd.store import Store
from intentd.store.events import read_session
from intentd.store.schema import sessions, users

log = structlog.get_logger("intentd.hub")

POLL_INTERVAL = 0.5
# With a healthy bus, how often the log is still checked for what the bus may
# have dropped (a publish lost on a reconnecting connection) and for sessions
# that expired: one batched query per process.
SWEEP_EVERY = 2.0
_PAGE = 500
# Live events a slow client may have waiting before they are dropped and
# re-read from the log when it catches up: memory per socket stays bounded.
MAX_PENDING = 2000

SendJson = Callable[[dict[str, Any]], Awaitable[None]]
# (close code, reason, error code to send first or None)
CloseSocket = Callable[[int, str, str | None], Awaitable[None]]

# Close codes (DESIGN §5).
CLOSE_GOING_AWAY = 1001
CLOSE_UNAUTHORIZED = 4401
CLOSE_INTERNAL_ERROR = 1011


class Connection:
    """One socket's delivery cursor and the task that sends its events in order.

    The task starts with the first thing to deliver: most sockets sit idle
    for long stretches, and one that never receives an event never costs a
    task.
    """

    def __init__(
        self,
        store: Store,
        session_id: str,
        user_id: str | None,
        send: SendJson,
        close: CloseSocket,
        *,
        after_seq: int,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.store = store
        self.max_pending = max_pending
        self.session_id = session_id
        self.user_id = user_id
        self.closed = False
        self.last_delivered = after_seq
        self._send = send
        self._close = close
        self._pending: dict[int, dict[str, Any]] = {}
        self._highest_seen = after_seq
        self._fill = False
        self._rewind_to: int | None = None
        self._holds = 0
        # Both made with the first thing to deliver (an Event alone is 0.9 KB).
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    # -- fed by the hub and the socket ------------------------------------

    def offer(self, event: dict[str, Any]) -> None:
        """A live event of this session (from the bus or a poll); never blocks."""
        seq = event.get("seq")
        if not isinstance(seq, int) or seq <= self.last_delivered or self.closed:
            return
        self._highest_seen = max(self._highest_seen, seq)
        if len(self._pending) < self.max_pending:
            self._pending[seq] = event
        else:  # too far behind: forget the bodies, the gap is filled from the log
            self._pending.clear()
        self._wake_up()

    def replay_from(self, after_seq: int) -> None:
        """Deliver every event after ``after_seq`` from the log, then carry on live.

        Applied by the delivery task between two sends, so a send in flight
        cannot move the cursor past the rewind.
        """
        self._rewind_to = after_seq
        self._wake_up()

    def go_live(self, last_seq: int) -> None:
        """Start after ``last_seq`` without reading the log: only later events are sent.

        For a fresh connection, under ``holding``: no send can be in flight.
        """
        self.last_delivered = max(self.last_delivered, last_seq)
        self._highest_seen = max(self._highest_seen, self.last_delivered)
        self._pending = {s: e for s, e in self._pending.items() if s > self.last_delivered}
        if self._due():
            self._wake_up()

    def catch_up_to(self, last_seq: int) -> None:
        """The log has events up to ``last_seq``: fetch any this socket has not had."""
        if last_seq > self._highest_seen:
            self._highest_seen = last_seq
            self._wake_up()

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Defer delivery while a request is in flight, so its ack precedes its events."""
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            if self._due():
                self._wake_up()

    async def stop(self) -> None:
        self.closed = True
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def close(self, code: int, reason: str, error_code: str | None = None) -> None:
        """Close the socket, after an ``error`` message when ``error_code`` is given."""
        if self.closed:
            return
        self.closed = True
        self._wake_up()  # a running task sees `closed` and ends; none is started for it
        await self._close(code, reason, error_code)

    # -- delivery ---------------------------------------------------------

    def _due(self) -> bool:
        """Whether there is anything to deliver (or to read from the log first)."""
        return bool(self._pending) or self._fill or self._rewind_to is not None \
            or self._highest_seen > self.last_delivered

    def _wake_up(self) -> None:
        if self._wake is None:
            if self.closed:
                return
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                self._run(self._wake), name=f"deliver-{self.session_id}"
            )
        self._wake.set()

    async def _run(self, wake: asyncio.Event) -> None:
        try:
            while not self.closed:
                await wake.wait()
                wake.clear()
                await self._deliver()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A send on a socket that went away, or the log unreadable: either
            # way this cursor cannot go on. Close, so that a live client
            # reconnects and resumes from its last seq instead of going quiet.
            log.debug("delivery stopped", session_id=self.session_id, error=type(exc).__name__)
            try:
                await self.close(CLOSE_INTERNAL_ERROR, "delivery failed", "unavailable")
            except Exception:
                self.closed = True

    async def _deliver(self) -> None:
        while not self.closed and not self._holds:
            if self._rewind_to is not None:
                self.last_delivered, self._rewind_to = self._rewind_to, None
                self._pending = {s: e for s, e in self._pending.items() if s > self.last_delivered}
                self._fill = True
            following = self._pending.pop(self.last_delivered + 1, None)
            if following is not None:
                await self._emit(following)
                continue
            if self._fill or self._highest_seen > self.last_delivered:
                batch = await read_session(self.store, self.session_id, self.last_delivered, _PAGE)
                if not batch:
                    # The log has nothing newer (a gap pruned by retention): don't spin.
                    self._fill = False
                    self._highest_seen = self.last_delivered
                    break
                for event in batch:
                    if self.closed or self._holds or self._rewind_to is not None:
                        break
                    if event["seq"] > self.last_delivered:
                        self._pending.pop(event["seq"], None)
                        await self._emit(event)
                else:
                    if len(batch) < _PAGE:  # the whole log is out
                        self._fill = False
                continue
            break
        if self._pending:
            self._pending = {s: e for s, e in self._pending.items() if s > self.last_delivered}

    async def _emit(self, event: dict[str, Any]) -> None:
        await self._send(event)
        self.last_delivered = event["seq"]


class Hub:
    """This process's connections, by session; fed by the bus (or the log when the bus is down)."""

    def __init__(self, store: Store, bus: Bus, *, poll_interval: float = POLL_INTERVAL) -> None:
        self.store = store
        self.bus = bus
        self.poll_interval = poll_interval
        self._by_session: dict[str, set[Connection]] = {}
        self._count = 0
        self._unsubscribe: list[Unsubscribe] = []
        self._poller: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._swept: dict[str, int] = {}  # last_seq by session, as the last sweep read it

    @property
    def socket_count(self) -> int:
        return self._count

    def sockets_of(self, session_id: str) -> int:
        return len(self._by_session.get(session_id, ()))

    async def start(self) -> None:
        self._unsubscribe = [
            self.bus.subscribe(EVENTS, self._on_event),
            self.bus.subscribe(CONTROL, self._on_control),
        ]
        self._poller = asyncio.create_task(self._watch_log(), name="hub-poller")

    async def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        await self.close_all(CLOSE_GOING_AWAY, "server shutting down")
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def register(self, conn: Connection) -> None:
        conns = self._by_session.setdefault(conn.session_id, set())
        if conn not in conns:
            conns.add(conn)
            self._count += 1

    async def unregister(self, conn: Connection) -> None:
        conns = self._by_session.get(conn.session_id)
        if conns is not None and conn in conns:
            conns.discard(conn)
            self._count -= 1
            if not conns:
                del self._by_session[conn.session_id]
        await conn.stop()

    async def close_all(self, code: int, reason: str) -> None:
        """Close every socket of this process (server shutdown: 1001, clients resume elsewhere)."""
        conns = [conn for conns in self._by_session.values() for conn in conns]
        await asyncio.gather(*(conn.close(code, reason) for conn in conns), return_exceptions=True)

    def close_session(self, session_id: str, reason: str) -> None:
        self._close_where(lambda conn: conn.session_id == session_id, reason)

    def close_user(self, user_id: str, reason: str) -> None:
        self._close_where(lambda conn: conn.user_id == user_id, reason)

    # -- bus handlers (synchronous: they only hand work over) ---------------

    def _on_event(self, message: dict[str, Any]) -> None:
        session_id = message.get("session_id")
        if not isinstance(session_id, str):
            return
        for conn in tuple(self._by_session.get(session_id, ())):
            conn.offer(message)

    def _on_control(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "session.revoked" and isinstance(message.get("session_id"), str):
            self.close_session(message["session_id"], "the session has been revoked")
        elif kind == "user.disabled" and isinstance(message.get("user_id"), str):
            self.close_user(message["user_id"], "the account has been disabled")

    def _close_where(self, matches: Callable[[Connection], bool], reason: str) -> None:
        for conns in tuple(self._by_session.values()):
            for conn in tuple(conns):
                if matches(conn) and not conn.closed:
                    task = asyncio.get_running_loop().create_task(
                        conn.close(CLOSE_UNAUTHORIZED, reason, "unauthorized")
                    )
                    self._closing.add(task)
                    task.add_done_callback(self._closing.discard)

    # -- the log behind the bus ------------------------------------------------

    async def _watch_log(self) -> None:
        was_down, since_sweep = False, 0.0
        while True:
            await asyncio.sleep(self.poll_interval)
            since_sweep += self.poll_interval
            # One more round after the bus recovers: an event published while
            # it resubscribed would otherwise wait for the next one to be noticed.
            down = not self.bus.healthy
            recovering, was_down = was_down and not down, down
            if not self._by_session:
                continue
            if down or recovering:
                await self._check_sessions()
                await self._poll()
            elif since_sweep >= SWEEP_EVERY:
                since_sweep = 0.0
                await self._check_sessions()
                await self._sweep()

    async def _check_sessions(self) -> None:
        """Revocations and expiry, read from the store (the bus may not have said)."""
        try:
            for session_id in await invalid_sessions(self.store, list(self._by_session)):
                self.close_session(session_id, "the session is no longer valid")
        except Exception as exc:
            log.warning("session check failed", error=type(exc).__name__)

    async def _sweep(self) -> None:
        """Wake the sockets whose session's log went further than they heard.

        Each sweep acts on what the previous one read: an event committed a
        moment ago is usually still on its way through the bus, and waking
        every socket of a busy session to read it from the log would cost a
        read per socket for nothing. What the bus lost is a sweep late.
        """
        try:
            latest = await last_seqs(self.store, list(self._by_session))
        except Exception as exc:
            log.warning("event log sweep failed", error=type(exc).__name__)
            return
        previous, self._swept = self._swept, latest
        for session_id, last_seq in previous.items():
            for conn in tuple(self._by_session.get(session_id, ())):
                if not conn.closed:
                    conn.catch_up_to(last_seq)

    async def _poll(self) -> None:
        """With the bus down: read each session's new events from the log."""
        for session_id, conns in tuple(self._by_session.items()):
            live = [conn for conn in conns if not conn.closed]
            if not live:
                continue
            try:
                events = await read_session(self.store, session_id, min(conn.last_delivered for conn in live), _PAGE)
            except Exception as exc:  # the store is down too: try again next round
                log.warning("event log poll failed", error=type(exc).__name__)
                return
            for event in events:
                for conn in live:
                    conn.offer(event)


async def last_seqs(store: Store, session_ids: list[str]) -> dict[str, int]:
    def read(conn: sa.Connection) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(session_ids), _PAGE):  # bounded IN lists
            query = sa.select(sessions.c.id, sessions.c.last_seq).where(
                sessions.c.id.in_(session_ids[start : start + _PAGE])
            )
            found.update({row.id: row.last_seq for row in conn.execute(query)})
        return found

    return await store.run_read(read)


async def invalid_sessions(store: Store, session_ids: list[str]) -> list[str]:
    """Those of ``session_ids`` that are revoked, expired, or whose user is disabled or gone."""
    now = time.time()
    invalid = sa.or_(
        sessions.c.revoked_at.is_not(None),
        sessions.c.expires_at <= now,
        sa.and_(sessions.c.user_id.is_not(None), sa.or_(users.c.id.is_(None), users.c.disabled.is_(True))),
    )

    def read(conn: sa.Connection) -> list[str]:
        found: list[str] = []
        for start in range(0, len(session_ids), _PAGE):  # bounded IN lists
            query = (
                sa.select(sessions.c.id)
                .select_from(sessions.outerjoin(users, users.c.id == sessions.c.user_id))
                .where(sessions.c.id.in_(session_ids[start : start + _PAGE]), invalid)
            )
            found.extend(row.id for row in conn.execute(query))
        return found

    return await store.run_read(read)
