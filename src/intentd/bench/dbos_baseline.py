"""The `intents` baseline: bare DBOS no-op async workflows, in their own process.

The same DBOS version and database kind as intentd's engine
(``intentd.runtime.engine``), with a workflow that does nothing. Started
directly (``DBOS.start_workflow_async``) or through a queue with intentd's
worker concurrency and polling interval. DBOS has no network API, so the
closed-loop driver runs in this process, as it does inside intentd.

DBOS's own configuration, or with ``--tuned`` the one intentd's engine sets
for its work (``intentd.runtime.dbos_config``), the workflow started
without arguments as intentd's are: what intentd adds, apart from how it
sets DBOS up.

    python -m intentd.bench.dbos_baseline --database-url sqlite:///x/dbos.sqlite --mode queue [--tuned]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from typing import Any

import orjson
import uvloop
from dbos import DBOS, SetWorkflowID

from intentd.bench.procs import READY_LINE, machine_busy_seconds
from intentd.bench.report import latency_ms
from intentd.config import Settings
from intentd.runtime.dbos_config import dbos_tuning, sqlite_wal, tune_dbos_database

_done: dict[str, asyncio.Future[None]] = {}  # queued workflow id -> resolved when its body returns


@DBOS.workflow(name="bench.noop")
async def noop(*_: str) -> str:
    workflow_id = DBOS.workflow_id or ""
    future = _done.get(workflow_id)
    if future is not None and not future.done():
        future.set_result(None)
    return workflow_id


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.database_url.startswith("sqlite"):  # as the engine does
        sqlite_wal(args.database_url)
    settings = Settings(database_url=args.database_url)  # the engine's defaults, on this database
    dbos = DBOS(config={
        "name": "intentd-bench-baseline",
        "system_database_url": args.database_url,
        "application_version": "bench-1",
        "executor_id": args.executor_id,
        "log_level": "WARNING",
        "notification_listener_polling_interval_sec": 0.1,
        **(dbos_tuning(settings) if args.tuned else {}),
    })
    DBOS.launch()
    if args.tuned:
        tune_dbos_database(dbos._sys_db.engine, settings)
    queue = await DBOS.register_queue_async(
        "bench", worker_concurrency=args.concurrency, polling_interval_sec=args.poll_interval,
        on_conflict="always_update",
    )
    loop = asyncio.get_running_loop()
    completed = 0

    async def one() -> float:
        nonlocal completed
        workflow_id = str(uuid.uuid4())
        started = time.perf_counter()
        if args.mode == "direct":
            with SetWorkflowID(workflow_id):
                # Tuned: started as intentd starts its workflows, without arguments.
                handle = await DBOS.start_workflow_async(noop, *([] if args.tuned else [workflow_id]))
            await handle.get_result()
        else:
            # A queued handle's get_result polls the database; the in-process
            # future avoids charging that polling to the engine.
            _done[workflow_id] = loop.create_future()
            try:
                with SetWorkflowID(workflow_id):
                    await queue.enqueue_async(noop, workflow_id)
                await asyncio.wait_for(_done[workflow_id], 60)
            finally:
                del _done[workflow_id]
        completed += 1
        return time.perf_counter() - started

    cpu_before = time.process_time()  # this process: DBOS and its (in-process) driver
    busy_before = machine_busy_seconds()  # and the whole machine: the database's work too
    light = []
    for _ in range(args.light_count):
        light.append(await one())
        await asyncio.sleep(args.light_interval)

    if args.side_by_side:  # processes measured side by side share one window, begun once all are ready
        sys.stdout.buffer.write(READY_LINE + b"\n")
        sys.stdout.flush()
        await asyncio.to_thread(sys.stdin.readline)
    began_at = time.time()
    begin = time.perf_counter() + args.warmup
    end = begin + args.duration
    measured: list[float] = []

    async def worker() -> None:
        while time.perf_counter() < end:
            sent = time.perf_counter()
            latency = await one()
            if begin <= sent + latency <= end:  # completed inside the window
                measured.append(latency)

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    cpu = time.process_time() - cpu_before
    busy = machine_busy_seconds() - busy_before
    await asyncio.to_thread(DBOS.destroy, workflow_completion_timeout_sec=0)
    return {
        "mode": args.mode, "tuned": args.tuned, "concurrency": args.concurrency, "poll_interval": args.poll_interval,
        "server_cpu_ms_per_workflow": round(cpu * 1000 / completed, 3) if completed else None,
        "machine_cpu_ms_per_intent": round(busy * 1000 / completed, 3) if completed else None,
        "began_at": began_at,
        "light": {"count": len(light), **latency_ms(light)},
        "throughput": {"completed": len(measured), "seconds": args.duration,
                       "per_second": round(len(measured) / args.duration, 1), **latency_ms(measured)},
    }


def main() -> None:
    defaults = Settings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--mode", choices=("direct", "queue"), default="queue")
    parser.add_argument("--tuned", action="store_true", help="DBOS configured as intentd's engine configures it")
    parser.add_argument("--concurrency", type=int, default=defaults.runtime_concurrency)
    parser.add_argument("--poll-interval", type=float, default=defaults.queue_poll_interval)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--light-count", type=int, default=20)
    parser.add_argument("--light-interval", type=float, default=0.05)
    parser.add_argument("--executor-id", default="bench", help="distinct for each process on one database")
    parser.add_argument("--side-by-side", action="store_true",
                        help='after the light load, say {"phase": "ready"} and begin the warm-up on a line of stdin')
    result = uvloop.run(run(parser.parse_args()))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
