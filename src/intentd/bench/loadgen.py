"""The load generator: asyncio + uvloop + the ``websockets`` client, in its own process.

``python -m intentd.bench.loadgen`` reads one job (a JSON line) on stdin and
writes JSON lines on stdout: one per phase (``{"phase": ...}``). Jobs that
hold load between phases wait for a ``{"cmd": "continue"}`` line. Every
scenario and its baseline use this same client, so their figures compare.

Jobs: ``hold`` (connect N sockets, later ping each), ``pingpong`` (closed-loop
round trips over C sockets), ``fanout`` (sockets receiving the events of
streaming executions: latency, gaps, duplicates), ``intents`` (submit over the
socket, time to ``execution.started``/``execution.completed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import resource
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvloop
from websockets.asyncio.client import ClientConnection, connect

from intentd.bench.procs import machine_busy_seconds
from intentd.bench.report import latency_ms

OPEN_TIMEOUT = 60.0
REPLY_TIMEOUT = 30.0
FANOUT_START_ROUNDS = 5  # the fan-out's streams start over this many intervals
FANOUT_SETTLE_S = 2.0  # `latency_steady` leaves out deliveries in the first seconds of a fan-out
Job = dict[str, Any]


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(message).decode() + "\n")
    sys.stdout.flush()


async def wait_continue() -> None:
    line = await asyncio.to_thread(sys.stdin.readline)
    if not line:
        raise SystemExit("the orchestrator went away")


# --- connecting -----------------------------------------------------------------


@dataclass
class Sock:
    ws: ClientConnection
    session_id: str | None = None
    last_seq: int = 0
    connect_s: float = 0.0  # TCP + WebSocket handshake + auth until `ready`


async def open_socket(url: str, token: str | None) -> Sock:
    started = time.perf_counter()
    ws = await connect(
        url, compression=None, ping_interval=None, max_size=1 << 22, open_timeout=OPEN_TIMEOUT,
        close_timeout=2, max_queue=None,
    )
    sock = Sock(ws)
    if token is not None:
        await ws.send(orjson.dumps({"type": "auth", "session_token": token}).decode())
        ready = orjson.loads(await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT))
        if ready.get("type") != "ready":
            await ws.close()
            raise ConnectionError(f"expected ready, got {ready}")
        sock.session_id = ready["session_id"]
        sock.last_seq = ready["last_seq"]
    sock.connect_s = time.perf_counter() - started
    return sock


async def open_many(url: str, tokens: list[str | None], concurrency: int) -> tuple[list[Sock | None], float, list[str]]:
    """Open one socket per token, ``concurrency`` handshakes at a time: (sockets, seconds, errors)."""
    gate = asyncio.Semaphore(concurrency)
    errors: list[str] = []

    async def one(token: str | None) -> Sock | None:
        async with gate:
            try:
                return await open_socket(url, token)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                return None

    started = time.perf_counter()
    socks = await asyncio.gather(*(one(t) for t in tokens))
    return list(socks), time.perf_counter() - started, errors


async def close_all(socks: list[Sock], concurrency: int = 500) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(sock: Sock) -> None:
        async with gate:
            try:
                await sock.ws.close()
            except Exception:
                pass

    await asyncio.gather(*(one(s) for s in socks))


def connect_summary(socks: list[Sock | None], seconds: float, errors: list[str]) -> dict[str, Any]:
    opened = [s for s in socks if s is not None]
    return {
        "requested": len(socks),
        "connected": len(opened),
        "failed": len(socks) - len(opened),
        "errors": sorted(set(errors))[:5],
        "seconds": round(seconds, 3),
        "rate_per_s": round(len(opened) / seconds, 1) if seconds > 0 else None,
        "connect_latency": latency_ms([s.connect_s for s in opened]),
    }


async def ping(sock: Sock, message_id: int, *, echo: bool) -> float:
    """One round trip: our `ping` until its `pong` (or, from an echo server, the same frame)."""
    text = orjson.dumps({"type": "ping", "id": message_id}).decode()
    started = time.perf_counter()
    await sock.ws.send(text)
    while True:
        reply = orjson.loads(await asyncio.wait_for(sock.ws.recv(), REPLY_TIMEOUT))
        if reply.get("id") == message_id and reply.get("type") == ("ping" if echo else "pong"):
            return time.perf_counter() - started


# --- jobs ---------------------------------------------------------------------------


async def job_hold(job: Job) -> None:
    """Connect N sockets, report; on `continue`, ping every socket, report; close."""
    tokens = job.get("tokens") or [None]
    count = job["count"]
    echo = job.get("echo", False)
    socks, seconds, errors = await open_many(
        job["url"], [tokens[i % len(tokens)] for i in range(count)], job.get("connect_concurrency", 200)
    )
    emit({"phase": "connected", **connect_summary(socks, seconds, errors)})
    await wait_continue()
    opened = [s for s in socks if s is not None]
    gate = asyncio.Semaphore(job.get("ping_concurrency", 1000))
    rtts: list[float] = []
    failures: list[str] = []

    async def one(i: int, sock: Sock) -> None:
        async with gate:
            try:
                rtts.append(await ping(sock, i, echo=echo))
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}"[:200])

    started = time.perf_counter()
    await asyncio.gather(*(one(i, s) for i, s in enumerate(opened)))
    emit({
        "phase": "pinged", "pinged": len(opened), "answered": len(rtts), "errors": sorted(set(failures))[:5],
        "seconds": round(time.perf_counter() - started, 3), "rtt": latency_ms(rtts),
    })
    await close_all(opened)


async def job_pingpong(job: Job) -> None:
    """Closed loop: each of C sockets sends a ping, awaits the answer, repeats.

    With ``interval`` > 0 each socket sends one ping per ``interval``, on a
    schedule offset by ``interval / C`` from the previous socket's: light,
    even load, for latency comparisons that queueing does not dominate. (All
    sockets pausing the same ``interval`` after their answers would send
    their pings in bursts of C.)
    """
    tokens = job.get("tokens") or [None]
    count = job["connections"]
    echo = job.get("echo", False)
    interval = job.get("interval") or 0.0
    socks, seconds, errors = await open_many(
        job["url"], [tokens[i % len(tokens)] for i in range(count)], job.get("connect_concurrency", 200)
    )
    opened = [s for s in socks if s is not None]
    emit({"phase": "connected", **connect_summary(socks, seconds, errors)})
    await wait_continue()  # the orchestrator starts its CPU accounting after the handshakes
    warmup, duration = job.get("warmup", 1.0), job["duration"]
    begin = time.perf_counter() + warmup
    end = begin + duration
    rtts: list[float] = []
    failures: list[str] = []
    total = 0

    async def loop(i: int, sock: Sock) -> None:
        nonlocal total
        n, base, offset, slot = 0, i * 10_000_000, begin - warmup + i * interval / count, 0
        try:
            while True:
                if interval:
                    await asyncio.sleep(max(0.0, offset + slot * interval - time.perf_counter()))
                rtt = await ping(sock, base + n, echo=echo)
                n += 1
                total += 1
                done = time.perf_counter()
                if done >= end:
                    return
                if done - rtt >= begin:
                    rtts.append(rtt)
                if interval:  # the next slot; a late answer skips the slots it missed
                    slot = max(slot + 1, math.ceil((done - offset) / interval))
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}"[:200])

    cpu_before = time.process_time()
    await asyncio.gather(*(loop(i, s) for i, s in enumerate(opened)))
    emit({
        "phase": "done", "connect": connect_summary(socks, seconds, errors), "connections": len(opened),
        "round_trips": len(rtts), "all_round_trips": total, "seconds": duration, "per_second": round(len(rtts) / duration, 1),
        "rtt": latency_ms(rtts), "failures": len(failures), "errors": sorted(set(failures))[:5],
        "client_cpu_s": round(time.process_time() - cpu_before, 2),
    })
    await close_all(opened)


@dataclass
class Delivery:
    seqs: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)
    first_at: float | None = None
    last_at: float | None = None
    completed: set[str] = field(default_factory=set)  # execution ids


async def job_fanout(job: Job) -> None:
    """Sockets receive the events of one `bench.stream` execution per session.

    One socket per session submits the stream; every socket records each
    event's seq and its latency (receipt minus the event's ``created_at``).
    """
    sockets: list[dict[str, Any]] = job["sockets"]  # [{token, driver}]
    socks, seconds, errors = await open_many(
        job["url"], [s["token"] for s in sockets], job.get("connect_concurrency", 200)
    )
    if any(s is None for s in socks):
        emit({"phase": "error", "error": f"could not connect every socket: {sorted(set(errors))[:3]}"})
        return
    opened: list[Sock] = [s for s in socks if s is not None]
    emit({"phase": "connected", **connect_summary(socks, seconds, errors)})
    await wait_continue()
    deliveries = [Delivery() for _ in opened]
    drivers = [i for i, spec in enumerate(sockets) if spec["driver"]]
    stream_ids: dict[str, str] = {}  # session_id -> execution id of its stream
    # The sockets still waiting for their stream's end, and one event for all of
    # them: waiting with a task per socket cost the load generator's loop 10 ms
    # of CPU just as the last stream started, and its deliveries counted that
    # delay as the server's latency.
    unfinished = set(range(len(opened)))
    all_finished = asyncio.Event()

    def finish(i: int) -> None:
        unfinished.discard(i)
        if not unfinished:
            all_finished.set()

    acked: dict[int, asyncio.Future[str]] = {i: asyncio.get_running_loop().create_future() for i in drivers}

    async def receive(i: int, sock: Sock) -> None:
        record = deliveries[i]
        async for raw in sock.ws:
            now = time.time()
            message = orjson.loads(raw)
            seq = message.get("seq")
            if seq is not None:
                record.seqs.append(seq)
                record.latencies.append(now - message["created_at"])
                record.received_at.append(now)
                record.first_at = record.first_at or now
                record.last_at = now
                if message["type"] == "execution.completed":
                    record.completed.add(message["execution_id"])
                    if message["execution_id"] == stream_ids.get(sock.session_id or ""):
                        finish(i)
            elif message.get("type") == "ack" and i in acked and not acked[i].done():
                acked[i].set_result(message["execution_id"])
            elif message.get("type") == "error":
                raise RuntimeError(f"server error: {message}")

    readers = [asyncio.create_task(receive(i, s)) for i, s in enumerate(opened)]
    # Stream k starts at k * interval/sessions, plus (k mod FANOUT_START_ROUNDS)
    # whole intervals: the streams' events are spread evenly over each interval
    # (a steady rate, not every session's event in the same instant), and the
    # streams start over several intervals, at 50 intents/s with the defaults,
    # rather than at 250/s, more than a slow host accepts while the first
    # streams already emit.
    params = {"count": job["events_per_session"], "interval": job["interval"]}
    spacing, began = job["interval"] / len(drivers), time.perf_counter()
    for k in sorted(range(len(drivers)), key=lambda k: (k % FANOUT_START_ROUNDS, k)):
        due = began + (k % FANOUT_START_ROUNDS) * job["interval"] + k * spacing
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        await opened[drivers[k]].ws.send(orjson.dumps(
            {"type": "intent", "id": f"stream-{drivers[k]}", "intent": "bench.stream", "params": params}).decode())
    for i in drivers:
        stream_ids[opened[i].session_id or ""] = await asyncio.wait_for(acked[i], REPLY_TIMEOUT)
    for i, sock in enumerate(opened):  # a very short stream may have completed before its ack was read
        if stream_ids.get(sock.session_id or "") in deliveries[i].completed:
            finish(i)
    timeout = job["events_per_session"] * job["interval"] + job.get("grace", 30.0)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_finished.wait(), timeout)
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    reader_errors = [repr(t.exception()) for t in readers if not t.cancelled() and t.exception()]

    gaps = duplicates = reordered = 0
    latencies: list[float] = []
    for sock, record in zip(opened, deliveries, strict=True):
        unique = set(record.seqs)
        duplicates += len(record.seqs) - len(unique)
        reordered += sum(1 for a, b in zip(record.seqs, record.seqs[1:]) if b <= a)
        if record.seqs:
            expected = set(range(sock.last_seq + 1, max(unique) + 1))
            gaps += len(expected - unique)
        latencies.extend(record.latencies)
    firsts = [r.first_at for r in deliveries if r.first_at]
    lasts = [r.last_at for r in deliveries if r.last_at]
    origin = min(firsts) if firsts else 0.0
    window = (max(lasts) - origin) if firsts and lasts else 0.0
    # Without the first seconds, while the streams are being started.
    settled = origin + FANOUT_SETTLE_S
    steady = [latency for record in deliveries
              for at, latency in zip(record.received_at, record.latencies, strict=True) if at >= settled]
    by_second: dict[int, list[float]] = {}
    for record in deliveries:
        for at, latency in zip(record.received_at, record.latencies, strict=True):
            by_second.setdefault(int(at - origin), []).append(latency)
    emit({
        "phase": "done", "connect": connect_summary(socks, seconds, errors), "sockets": len(opened),
        "sessions": len(drivers), "delivered": len(latencies), "window_s": round(window, 3),
        "delivered_per_s": round(len(latencies) / window, 1) if window else None,
        "latency": latency_ms(latencies), "latency_steady": latency_ms(steady),
        "latency_by_second": [latency_ms(by_second[k]) for k in sorted(by_second)],
        "gaps": gaps, "duplicates": duplicates, "reordered": reordered,
        "unfinished_sockets": len(unfinished), "reader_errors": reader_errors[:3],
    })
    await close_all(opened)


class IntentClient:
    """One authenticated socket submitting intents and timing their events."""

    def __init__(self, sock: Sock) -> None:
        self.sock = sock
        self._acks: dict[str, asyncio.Future[tuple[str, float]]] = {}
        self._waiters: dict[str, dict[str, asyncio.Future[float]]] = {}
        self._early: dict[str, dict[str, float]] = {}  # events seen before their ack
        self._counter = 0
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.sock.ws:
            now = time.perf_counter()
            message = orjson.loads(raw)
            kind = message.get("type")
            if kind == "ack":
                future = self._acks.pop(str(message.get("id")), None)
                if future is not None and not future.done():
                    future.set_result((message["execution_id"], now))
            elif kind == "error":
                future = self._acks.pop(str(message.get("reply_to")), None)
                if future is not None and not future.done():
                    future.set_exception(RuntimeError(f"{message.get('code')}: {message.get('message')}"))
            elif "seq" in message and kind in ("execution.started", "execution.completed", "execution.failed"):
                execution_id = message["execution_id"]
                waiters = self._waiters.get(execution_id)
                if waiters is None:
                    self._early.setdefault(execution_id, {})[kind] = now
                    continue
                for key in (kind, "execution.completed") if kind == "execution.failed" else (kind,):
                    future = waiters.get(key)
                    if future is not None and not future.done():
                        if kind == "execution.failed":
                            future.set_exception(RuntimeError(f"execution failed: {message.get('data')}"))
                        else:
                            future.set_result(now)

    async def submit(self, intent: str, params: dict[str, Any]) -> dict[str, float]:
        """Submit and wait for completion: seconds from the send to ack, started, completed."""
        loop = asyncio.get_running_loop()
        self._counter += 1
        message_id = str(self._counter)
        ack: asyncio.Future[tuple[str, float]] = loop.create_future()
        self._acks[message_id] = ack
        started = time.perf_counter()
        await self.sock.ws.send(orjson.dumps({"type": "intent", "id": message_id, "intent": intent,
                                              "params": params}).decode())
        execution_id, acked_at = await asyncio.wait_for(ack, REPLY_TIMEOUT)
        waiters = {k: loop.create_future() for k in ("execution.started", "execution.completed")}
        self._waiters[execution_id] = waiters
        for kind, at in self._early.pop(execution_id, {}).items():
            if kind in waiters:
                waiters[kind].set_result(at)
        try:
            started_at = await asyncio.wait_for(waiters["execution.started"], REPLY_TIMEOUT)
            completed_at = await asyncio.wait_for(waiters["execution.completed"], REPLY_TIMEOUT)
        finally:
            del self._waiters[execution_id]
        return {"ack": acked_at - started, "started": started_at - started, "completed": completed_at - started}


async def job_intents(job: Job) -> None:
    """Light load (one at a time, paced) then throughput (closed loop, ``inflight`` per socket)."""
    socks, _, errors = await open_many(job["url"], job["tokens"], 50)
    if any(s is None for s in socks):
        emit({"phase": "error", "error": f"could not connect: {sorted(set(errors))[:3]}"})
        return
    clients = [IntentClient(s) for s in socks if s is not None]
    intent, params = job["intent"], job.get("params", {})
    busy_before, client_before = machine_busy_seconds(), time.process_time()

    light: list[dict[str, float]] = []
    for i in range(job["light_count"]):
        light.append(await clients[i % len(clients)].submit(intent, params))
        await asyncio.sleep(job.get("light_interval", 0.1))

    warmup, duration = job.get("warmup", 2.0), job["duration"]
    begin = time.perf_counter() + warmup
    end = begin + duration
    measured: list[dict[str, float]] = []
    failures: list[str] = []
    completed = len(light)

    async def worker(client: IntentClient) -> None:
        nonlocal completed
        while time.perf_counter() < end:
            sent = time.perf_counter()
            try:
                timing = await client.submit(intent, params)
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(0.1)
                continue
            completed += 1
            if begin <= sent + timing["completed"] <= end:  # completed inside the window
                measured.append(timing)

    await asyncio.gather(*(worker(c) for c in clients for _ in range(job["inflight"])))
    busy, client = machine_busy_seconds() - busy_before, time.process_time() - client_before

    def summary(timings: list[dict[str, float]]) -> dict[str, Any]:
        return {k: latency_ms([t[k] for t in timings]) for k in ("ack", "started", "completed")}

    emit({
        "phase": "done", "light": {"count": len(light), **summary(light)},
        "throughput": {"completed": len(measured), "seconds": duration,
                       "per_second": round(len(measured) / duration, 1), **summary(measured)},
        "concurrency": len(clients) * job["inflight"], "failures": len(failures), "all_completed": completed,
        # The whole machine's CPU per intent, without this process's own (the client's).
        "machine_cpu_ms_per_intent": round((busy - client) * 1000 / completed, 3) if completed else None,
        "errors": sorted(set(failures))[:5],
    })
    for client in clients:
        client.reader.cancel()
    await close_all([c.sock for c in clients])


JOBS: dict[str, Callable[[Job], Awaitable[None]]] = {
    "hold": job_hold, "pingpong": job_pingpong, "fanout": job_fanout, "intents": job_intents,
}


async def main() -> None:
    line = await asyncio.to_thread(sys.stdin.readline)
    job = orjson.loads(line)
    try:
        await JOBS[job["kind"]](job)
    except Exception as exc:
        traceback.print_exc()
        emit({"phase": "error", "error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvloop.run(main())
