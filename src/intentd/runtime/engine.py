"""The execution engine: executions are DBOS workflows, their events go to the store.

Create: the execution row and its ``execution.accepted`` event (with the
session's next seq) are written atomically (``intentd.store.acceptance``; a
batch of submissions in one transaction, ``create_many``);
then the workflow starts at once when this process has a free slot, or is
enqueued on a DBOS queue, under the execution id, which DBOS treats as the
idempotency key.

Run: the workflow loads the row, calls the handler with an IntentContext and
records the outcome. Failures and cancellation are outcomes, not DBOS errors,
so compensation runs as ordinary checkpointed steps.

Recovery: DBOS replays a crashed workflow from its checkpoints (same executor
id on restart; in distributed mode a live replica claims a dead one's work,
see ``_watch_replicas``).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson
import sqlalchemy as sa
import structlog
from dbos import DBOS, SetWorkflowID
from dbos import _dbos as dbos_module
from dbos._error import DBOSMaxStepRetriesExceeded
from pydantic import ValidationError

from intentd.bus import CONTROL, EVENTS, Bus
from intentd.config import Settings
from intentd.logs import adopt_logger
from intentd.problems import Problem, field_errors, problem_of
from intentd.runtime.context import Cancelled, IntentContext, IntentError, dump_result
from intentd.runtime.dbos_config import dbos_tuning, sqlite_wal, tune_dbos_database
from intentd.runtime.metrics import EXECUTIONS_FINISHED
from intentd.runtime.registry import Registry, RetryPolicy
from intentd.store import Store
from intentd.store.db import retry_transient
from intentd.store.acceptance import Duplicate, UnknownSession, accept, accept_many
from intentd.store.events import OUTCOMES, EventLog, NewEvent
from intentd.store.schema import executions, runtime_replicas, sessions

log = structlog.get_logger("intentd.runtime")

QUEUE_NAME = "intentd-executions"
TERMINAL = frozenset({"completed", "failed", "cancelled"})
_IDEMPOTENCY_NAMESPACE = uuid.UUID("0c6f1d7e-93b2-4b9f-8f43-6f0b7d1f2a55")

_EXECUTION = sa.select(executions).where(executions.c.id == sa.bindparam("eid"))
_EXECUTION_OF_TENANT = _EXECUTION.where(executions.c.tenant_id == sa.bindparam("tid"))

_engine: Engine | None = None  # DBOS workflows are module-level; they find the engine here


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    id: str
    tenant_id: str
    user_id: str | None
    session_id: str | None
    parent_id: str | None
    intent: str
    params: dict[str, Any]
    status: str


@dataclass(frozen=True, slots=True)
class CreateRequest:
    intent: str
    params: dict[str, Any]
    tenant_id: str
    user_id: str | None = None
    session_id: str | None = None
    idempotency_key: str | None = None
    parent_id: str | None = None
    retry_of: str | None = None


def execution_id_for(tenant_id: str, session_id: str | None, key: str) -> str:
    """The deterministic id of a keyed submission: same (tenant, session, key), same execution."""
    return str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"{tenant_id}\x1f{session_id or ''}\x1f{key}"))


def params_hash(intent: str, params: dict[str, Any]) -> str:
    return hashlib.sha256(intent.encode() + b"\x1f" + orjson.dumps(params, option=orjson.OPT_SORT_KEYS)).hexdigest()


class Engine:
    def __init__(self, settings: Settings, registry: Registry, store: Store, bus: Bus, event_log: EventLog) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.bus = bus
        self.events = event_log
        self.executor_id = settings.executor_id or (
            f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}" if settings.is_postgres else "local"
        )
        self._cancel_events: dict[str, asyncio.Event] = {}
        self._finished: dict[str, asyncio.Event] = {}
        # Rows just accepted and started here, by id: their first run needs no
        # read. A cancellation drops its entry (``_signal_cancel``).
        self._accepted: dict[str, dict[str, Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe: list[Any] = []
        self._queue: Any = None
        # DBOS.launch() starts replaying recovered workflows at once; one that
        # starts a child must wait until our queue is registered.
        self._queue_ready = asyncio.Event()
        # At most this many handlers run here at once, started directly or from the queue.
        self._slots = asyncio.Semaphore(settings.runtime_concurrency)
        # Steps that are plain functions run here: they may block, and neither
        # the event loop nor DBOS's threads should wait for them.
        self._blocking = ThreadPoolExecutor(settings.runtime_concurrency, thread_name_prefix="intentd-step")

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        global _engine
        _engine = self
        if not self.settings.is_postgres:
            sqlite_wal(self.settings.system_database_url)
        dbos = DBOS(
            config={
                "name": "intentd",
                "system_database_url": self.settings.system_database_url,
                "application_version": self.settings.application_version,
                "executor_id": self.executor_id,
                "log_level": "WARNING",
                "notification_listener_polling_interval_sec": 0.1,
                **dbos_tuning(self.settings),
            }
        )
        # Subscribed before launch: recovered workflows start listening at once.
        self._unsubscribe = [self.bus.subscribe(CONTROL, self._on_control), self.bus.subscribe(EVENTS, self._on_event)]
        DBOS.launch()
        tune_dbos_database(dbos._sys_db.engine, self.settings)
        # DBOS installs a plain-text handler of its own; ours writes JSON and redacts.
        adopt_logger("dbos", "DEBUG" if self.settings.log_level.upper() == "DEBUG" else "WARNING")
        # An *_async DBOS call right after launch also wakes workflows queued
        # before a relaunch in the same loop (DESIGN §2).
        self._queue = await DBOS.register_queue_async(
            QUEUE_NAME,
            worker_concurrency=self.settings.runtime_concurrency,
            polling_interval_sec=self.settings.queue_poll_interval,
            on_conflict="always_update",
        )
        self._queue_ready.set()
        self._tasks.append(asyncio.create_task(self._reconcile_forever(), name="reconcile"))
        if self.settings.is_postgres:
            self._tasks.append(asyncio.create_task(self._watch_replicas(), name="replica-watch"))
        log.info("runtime engine started", executor_id=self.executor_id)

    async def close(self) -> None:
        global _engine
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await _stop_running_workflows()
        self._blocking.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(DBOS.destroy, workflow_completion_timeout_sec=0)
        # DBOS made its executor this loop's default (asyncio.to_thread) and has
        # just shut it down; what closes after us (the store) still needs one.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(thread_name_prefix="asyncio"))
        if self.settings.is_postgres:
            # Stopped: let the others take our unfinished work now, not after a timeout.
            try:
                async with self.store.tx() as conn:
                    await conn.execute(
                        sa.update(runtime_replicas)
                        .where(runtime_replicas.c.executor_id == self.executor_id)
                        .values(heartbeat_at=0.0)
                    )
            except Exception:
                log.warning("could not mark this replica as leaving")
        _engine = None

    # -- create / cancel ----------------------------------------------------

    async def create(
        self, request: CreateRequest, *, execution_id: str | None = None, enqueue: bool = True
    ) -> tuple[dict[str, Any], bool]:
        """Accept an execution. Returns (execution, duplicate).

        ``enqueue=False`` leaves the start to the caller: a parent workflow
        starts its children itself, since DBOS cannot start one inside a step.
        """
        values = self._row_to_accept(request, execution_id)
        try:
            recorded = await accept(self.store, values)
        except (Duplicate, UnknownSession) as refused:
            return await self._refused(request, values, refused, enqueue)
        self.events.publish_soon([recorded])
        return await self._start_accepted(values, enqueue), False

    async def create_many(self, requests: list[CreateRequest]) -> list[tuple[dict[str, Any], bool] | Problem]:
        """``create`` for each request, their acceptance written together: each answer, or its problem."""
        prepared: list[dict[str, Any] | Problem] = []
        for request in requests:
            try:
                prepared.append(self._row_to_accept(request, None))
            except Problem as problem:
                prepared.append(problem)
        rows = [values for values in prepared if not isinstance(values, Problem)]
        try:
            outcomes: Iterator[Any] = iter(await accept_many(self.store, rows))
        except Exception as exc:  # the database is down: the requests that needed it meet that
            outcomes = iter([exc] * len(rows))
        accepted = [(values, next(outcomes)) if not isinstance(values, Problem) else (values, None)
                    for values in prepared]
        self.events.publish_soon([outcome for _, outcome in accepted if isinstance(outcome, dict)])

        async def settle(request: CreateRequest, values: Any, outcome: Any) -> tuple[dict[str, Any], bool] | Problem:
            try:
                if isinstance(values, Problem):
                    return values
                if isinstance(outcome, (Duplicate, UnknownSession)):
                    return await self._refused(request, values, outcome, True)
                if isinstance(outcome, Exception):
                    return problem_of(outcome)
                return await self._start_accepted(values, True), False
            except Exception as exc:  # this one's fault alone (a start that failed is retried by the reconciler)
                return problem_of(exc)

        return list(await asyncio.gather(
            *(settle(request, values, outcome) for request, (values, outcome) in zip(requests, accepted, strict=True))
        ))

    def _row_to_accept(self, request: CreateRequest, execution_id: str | None) -> dict[str, Any]:
        """The execution row ``request`` asks for; a Problem when the request is not valid."""
        spec = self.registry.get(request.intent)
        if spec is None:
            raise Problem(404, "unknown_intent", f"unknown intent {request.intent!r}")
        try:
            spec.params_model.model_validate(request.params)
        except ValidationError as exc:
            raise Problem(422, "invalid_params", f"params do not match the schema of {request.intent!r}",
                          errors=field_errors(exc.errors())) from exc
        if execution_id is None:
            execution_id = (
                execution_id_for(request.tenant_id, request.session_id, request.idempotency_key)
                if request.idempotency_key
                else str(uuid.uuid4())
            )
        return {
            "id": execution_id, "tenant_id": request.tenant_id, "user_id": request.user_id,
            "session_id": request.session_id, "parent_id": request.parent_id, "retry_of": request.retry_of,
            "intent": request.intent, "params": request.params, "params_hash": params_hash(request.intent, request.params),
            "idempotency_key": request.idempotency_key, "status": "accepted", "created_at": time.time(),
        }

    async def _start_accepted(self, values: dict[str, Any], enqueue: bool) -> dict[str, Any]:
        """Start (or queue) the execution ``values`` just accepted; the execution as answered."""
        row = _new_row(values)
        if enqueue:
            await self.start_or_enqueue(values["id"], row)
        return public_execution(row)

    async def _refused(
        self, request: CreateRequest, values: dict[str, Any], refused: Duplicate | UnknownSession, enqueue: bool
    ) -> tuple[dict[str, Any], bool]:
        """A submission that wrote nothing: the execution it repeats, or why not."""
        if isinstance(refused, UnknownSession):
            raise Problem(404, "not_found", "no such session")
        row = await self._row(values["id"])
        assert row is not None
        if row["params_hash"] != values["params_hash"] or row["tenant_id"] != request.tenant_id:
            raise Problem(409, "idempotency_conflict",
                          "this idempotency key was used with a different intent or params")
        if enqueue and row["status"] == "accepted":  # accepted, then a crash before it started
            await self.enqueue(values["id"])
        return public_execution(row), True

    async def start_or_enqueue(self, execution_id: str, accepted: dict[str, Any]) -> None:
        """Start at once when this process has a free slot; else queue it for the first replica with one.

        A direct start skips the queue's polling delay and its claim
        transaction; the slots in ``run`` bound what runs here either way.
        ``accepted`` is the row as just written, handed to a run started here.
        """
        if self._slots.locked():
            await self.enqueue(execution_id)
            return
        self._accepted[execution_id] = accepted
        try:
            with SetWorkflowID(execution_id):
                await DBOS.start_workflow_async(_execute)
        except BaseException:
            self._accepted.pop(execution_id, None)
            raise

    async def enqueue(self, execution_id: str) -> None:
        await self._queue_ready.wait()
        with SetWorkflowID(execution_id):
            await self._queue.enqueue_async(_execute)

    async def create_child(self, parent: IntentContext, child_id: str, intent: str, params: dict[str, Any]) -> str:
        try:
            await self.create(
                CreateRequest(intent=intent, params=params, tenant_id=parent.tenant_id, user_id=parent.user_id,
                              session_id=parent.session_id, parent_id=parent.execution_id),
                execution_id=child_id,
                enqueue=False,
            )
        except Problem as refused:  # unknown intent, bad params: the parent's failure, with its code
            raise IntentError(refused.code, refused.detail) from None
        return child_id

    async def cancel(self, execution_id: str, tenant_id: str | None = None) -> dict[str, Any]:
        query = sa.update(executions).where(executions.c.id == execution_id, executions.c.status.not_in(TERMINAL))
        if tenant_id is not None:
            query = query.where(executions.c.tenant_id == tenant_id)
        async with self.store.tx() as conn:
            await conn.execute(query.values(cancel_requested=True))
        row = await self.get(execution_id, tenant_id)
        if row is None:
            raise Problem(404, "not_found", "no such execution")
        if row["status"] not in TERMINAL:
            self._signal_cancel(execution_id)
            await self.bus.publish(CONTROL, {"type": "execution.cancel", "execution_id": execution_id})
            # Children are cancelled with their parent.
            async with self.store.read() as conn:
                children = (
                    await conn.execute(
                        sa.select(executions.c.id).where(
                            executions.c.parent_id == execution_id, executions.c.status.not_in(TERMINAL)
                        )
                    )
                ).scalars().all()
            for child in children:
                await self.cancel(child)
        return row

    # -- queries ------------------------------------------------------------

    async def get(self, execution_id: str, tenant_id: str | None = None) -> dict[str, Any] | None:
        row = await self._row(execution_id, tenant_id)
        return public_execution(row) if row is not None else None

    async def _row(self, execution_id: str, tenant_id: str | None = None) -> Any:
        query, params = (_EXECUTION, {"eid": execution_id}) if tenant_id is None else (
            _EXECUTION_OF_TENANT, {"eid": execution_id, "tid": tenant_id})
        row = await self.store.run_read(lambda conn: conn.execute(query, params).one_or_none())
        return row._mapping if row is not None else None

    async def cancel_requested(self, execution_id: str) -> bool:
        if self.is_cancel_requested_locally(execution_id):
            return True
        query = sa.select(executions.c.cancel_requested).where(executions.c.id == execution_id)
        return bool(await self._scalar(query, "read cancel flag"))

    async def _scalar(self, query: Any, what: str) -> Any:
        """One value, read inside a running workflow: a database outage is waited out."""

        async def read() -> Any:
            async with self.store.read() as conn:
                return (await conn.execute(query)).scalar_one_or_none()

        return await retry_transient(read, what=what)

    def is_cancel_requested_locally(self, execution_id: str) -> bool:
        event = self._cancel_events.get(execution_id)
        return event is not None and event.is_set()

    async def wait_cancel(self, execution_id: str, timeout: float) -> None:
        """Wait up to ``timeout`` seconds, or less when a cancellation arrives.

        The bus wakes us at once; a look at the row every second covers a bus
        that lost the message.
        """
        event = self._cancel_events.setdefault(execution_id, asyncio.Event())
        end = time.monotonic() + max(timeout, 0.0)
        while not event.is_set():
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(event.wait(), min(remaining, 1.0))
            except TimeoutError:
                if await self.cancel_requested(execution_id):
                    event.set()

    async def wait_finished(self, execution_id: str) -> dict[str, Any]:
        event = self._finished.setdefault(execution_id, asyncio.Event())
        try:
            while True:
                row = await retry_transient(lambda: self.get(execution_id), what="read child")
                if row is None:
                    raise IntentError("not_found", f"child execution {execution_id} does not exist")
                if row["status"] in TERMINAL:
                    return {"status": row["status"], "result": row["result"], "error": row["error"]}
                try:
                    await asyncio.wait_for(event.wait(), 1.0)
                except TimeoutError:
                    pass
        finally:
            self._finished.pop(execution_id, None)

    async def session_context(self, session_id: str) -> dict[str, Any]:
        query = sa.select(sessions.c.context).where(sessions.c.id == session_id)
        return dict(await self._scalar(query, "read session context") or {})

    # -- running ------------------------------------------------------------

    async def record(self, ctx: IntentContext, type: str, data: dict[str, Any], n: int, update: dict[str, Any]) -> None:
        await self.events.append(
            NewEvent(type, data, session_id=ctx.session_id, execution_id=ctx.execution_id, n=n, execution_update=update)
        )

    async def run_blocking(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` on the runtime's threads for blocking work, in the caller's context."""
        context = contextvars.copy_context()  # DBOS's step context, as asyncio.to_thread would
        return await asyncio.get_running_loop().run_in_executor(
            self._blocking, partial(context.run, fn, *args, **kwargs))

    async def run(self, execution_id: str) -> dict[str, Any]:
        async with self._slots:
            return await self._run(execution_id)

    async def _run(self, execution_id: str) -> dict[str, Any]:
        found = self._accepted.pop(execution_id, None) or await retry_transient(
            lambda: self._row(execution_id), what="load execution")
        row = ExecutionRow(found["id"], found["tenant_id"], found["user_id"], found["session_id"],
                           found["parent_id"], found["intent"], found["params"], found["status"])
        spec = self.registry.get(row.intent)
        if spec is None:  # the module that declared it is no longer loaded
            ctx = IntentContext(self, row, RetryPolicy(), next_n=1)
            return await self._finish(ctx, "failed", {"code": "unknown_intent", "message": f"intent {row.intent!r} is not registered"})
        # The first run records when it started (event n=1); a replay finds that
        # in the row, so the timeout counts from the first start.
        started_at = found["started_at"]
        ctx = IntentContext(self, row, spec.retry, next_n=1 if started_at is None else 2)
        self._cancel_events.setdefault(execution_id, asyncio.Event())  # so a bus cancel reaches us
        if started_at is None:
            if found["cancel_requested"]:
                return await self._finish(ctx, "cancelled", {})
            started_at = time.time()
            await ctx._record("execution.started", {}, {"status": "running", "started_at": started_at})
        deadline = None if spec.timeout is None else started_at + spec.timeout - time.time()
        budget = asyncio.timeout(None if deadline is None else max(deadline, 0.0))
        try:
            params = spec.params_model.model_validate(row.params)
            async with budget:
                result = await spec.handler(ctx, params)
        except Cancelled:
            return await self._undo_and_finish(ctx, "cancelled", {})
        except IntentError as exc:
            outcome = {"code": exc.code, "message": exc.message}
        except DBOSMaxStepRetriesExceeded as exc:
            last = exc.errors[-1] if exc.errors else exc
            outcome = (
                {"code": last.code, "message": last.message}
                if isinstance(last, IntentError)
                else {"code": "handler_error",
                      "message": f"step {exc.step_name!r} failed {exc.max_retries} times; last: {type(last).__name__}: {last}"}
            )
        except TimeoutError as exc:
            if budget.expired():
                outcome = {"code": "timeout", "message": f"{row.intent} exceeded its {spec.timeout:g} s timeout"}
            else:  # the handler's own timeout, not the intent's
                outcome = {"code": "handler_error", "message": f"TimeoutError: {exc}"}
        except ValidationError as exc:
            outcome = {"code": "invalid_params", "message": str(exc)}
        except Exception as exc:  # DBOS's own control flow (cancel, ID conflicts) is a BaseException
            log.warning("handler failed", execution_id=execution_id, intent=row.intent, error=repr(exc))
            code = "engine_error" if type(exc).__module__.startswith("dbos") else "handler_error"
            outcome = {"code": code, "message": f"{type(exc).__name__}: {exc}"}
        else:
            return await self._finish(ctx, "completed", {"result": dump_result(result)})
        return await self._undo_and_finish(ctx, "failed", outcome)

    async def _undo_and_finish(self, ctx: IntentContext, status: str, data: dict[str, Any]) -> dict[str, Any]:
        """Compensate, then record the outcome; a compensation that fails is the outcome."""
        try:
            await ctx._compensate()
        except Exception as exc:
            log.warning("compensation failed", execution_id=ctx.execution_id, error=repr(exc))
            return await self._finish(
                ctx, "failed", {"code": "compensation_failed", "message": f"{type(exc).__name__}: {exc}"}
            )
        return await self._finish(ctx, status, data)

    async def _finish(self, ctx: IntentContext, status: str, data: dict[str, Any]) -> dict[str, Any]:
        update: dict[str, Any] = {"status": status, "finished_at": time.time()}
        if status == "completed":
            update.update(result=data["result"], progress=1.0)
        elif status == "failed":
            update.update(error_code=data["code"], error_message=data["message"])
        await ctx._record(f"execution.{status}", data, update)
        self._cancel_events.pop(ctx.execution_id, None)
        EXECUTIONS_FINISHED.labels(ctx.intent, status).inc()
        return {"status": status, **data}

    # -- bus ----------------------------------------------------------------

    def _signal_cancel(self, execution_id: str) -> None:
        """Wake the execution if it runs here (elsewhere the bus carries the news)."""
        self._accepted.pop(execution_id, None)  # not started yet: it reads the cancel flag from its row
        event = self._cancel_events.get(execution_id)
        if event is not None:
            event.set()

    def _on_control(self, message: dict[str, Any]) -> None:
        if message.get("type") == "execution.cancel" and isinstance(message.get("execution_id"), str):
            self._signal_cancel(message["execution_id"])

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") in OUTCOMES:
            waiter = self._finished.get(event.get("execution_id") or "")
            if waiter is not None:
                waiter.set()

    # -- background ---------------------------------------------------------

    async def _reconcile_forever(self) -> None:
        """Enqueue executions accepted but never enqueued (a crash between the two)."""
        while True:
            try:
                async with self.store.read() as conn:
                    stranded = (
                        await conn.execute(
                            sa.select(executions.c.id).where(
                                executions.c.status == "accepted", executions.c.created_at < time.time() - 5
                            ).limit(500)
                        )
                    ).scalars().all()
                for execution_id in stranded:
                    await self.enqueue(execution_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reconcile failed", error=str(exc))
            await asyncio.sleep(10)

    async def _watch_replicas(self) -> None:
        """Heartbeat, and recover the work of replicas whose heartbeat stopped.

        Claiming a dead replica is one conditional DELETE: exactly one live
        replica wins it, even when several notice at the same moment.
        """
        started = time.time()
        while True:
            try:
                now = time.time()
                async with self.store.tx() as conn:
                    await conn.execute(
                        self.store.insert(runtime_replicas)
                        .values(executor_id=self.executor_id, started_at=started, heartbeat_at=now)
                        .on_conflict_do_update(index_elements=["executor_id"], set_={"heartbeat_at": now})
                    )
                    claimed = (
                        await conn.execute(
                            sa.delete(runtime_replicas)
                            .where(runtime_replicas.c.heartbeat_at < now - self.settings.dead_after)
                            .returning(runtime_replicas.c.executor_id)
                        )
                    ).scalars().all()
                for dead in claimed:
                    log.warning("recovering the work of a dead runtime replica", executor_id=dead)
                    handles = await asyncio.to_thread(DBOS._recover_pending_workflows, [dead])
                    log.info("recovered executions", executor_id=dead, count=len(handles))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("replica heartbeat failed", error=str(exc))
            await asyncio.sleep(self.settings.heartbeat_interval)


def _new_row(values: dict[str, Any]) -> dict[str, Any]:
    """The row ``values`` inserted, with the columns it left to their defaults."""
    defaults = dict.fromkeys(("result", "error_code", "error_message", "progress", "progress_message",
                              "started_at", "finished_at"))
    return {**defaults, "cancel_requested": False, **values}


def public_execution(row: Any) -> dict[str, Any]:
    return {
        "execution_id": row["id"],
        "intent": row["intent"],
        "params": row["params"],
        "status": row["status"],
        "result": row["result"],
        "error": {"code": row["error_code"], "message": row["error_message"]} if row["error_code"] else None,
        "progress": row["progress"],
        "progress_message": row["progress_message"],
        "cancel_requested": bool(row["cancel_requested"]),
        "session_id": row["session_id"],
        "user_id": row["user_id"],
        "tenant_id": row["tenant_id"],
        "parent_id": row["parent_id"],
        "retry_of": row["retry_of"],
        "idempotency_key": row["idempotency_key"],
        "created_at": row["created_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
    }


async def _stop_running_workflows() -> None:
    """Stop this process's workflows the way a crash would: cancelled mid-flight,
    they stay PENDING for recovery. Left running, they would outlive DBOS's
    executor and fail on the way out."""
    instance = dbos_module._dbos_global_instance
    tasks = list(getattr(instance, "_workflow_tasks", ()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@DBOS.workflow(name="intentd.execute")
async def _execute(*_earlier: str) -> dict[str, Any]:
    """The execution whose id is this workflow's id.

    Started without arguments: DBOS inspects the signature of a workflow
    started with some, on every start. Workflows recorded by earlier
    versions carry the id as their argument (``_earlier``).
    """
    execution_id = DBOS.workflow_id
    assert _engine is not None and execution_id is not None, "the runtime engine is not started"
    return await _engine.run(execution_id)
