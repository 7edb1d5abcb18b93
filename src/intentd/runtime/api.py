"""The runtime plane's HTTP API (`/api/runtime`): service token or a tenant admin only."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from intentd.bus import EVENTS
from intentd.problems import Problem, invalid_request
from intentd.runtime.engine import TERMINAL, CreateRequest, Engine, public_execution
from intentd.runtime.metrics import BATCH_ITEMS, EXECUTIONS_CREATED
from intentd.store.credentials import account_state
from intentd.store.events import OUTCOMES, read_execution
from intentd.store.schema import executions

router = APIRouter(prefix="/api/runtime")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls: the experience plane (any tenant) or an admin (their tenant only)."""

    tenant_id: str | None  # None: the service itself


async def engine_of(request: Request) -> Engine:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, a thread hop per request.
    return request.app.state.runtime.engine


async def caller(request: Request) -> Caller:
    settings = request.app.state.runtime.settings
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, "unauthorized", "a service token or an admin access token is required",
                      headers={"WWW-Authenticate": "Bearer"})
    if hmac.compare_digest(token.encode(), settings.service_token.encode()):
        return Caller(tenant_id=None)
    try:
        claims = jwt.decode(token, settings.secret_key, algorithms=["HS256"], options={"require": ["exp", "sub"]})
    except jwt.PyJWTError:
        raise Problem(401, "unauthorized", "invalid token", headers={"WWW-Authenticate": "Bearer"}) from None
    if claims.get("typ") != "access" or claims.get("role") != "admin" or not claims.get("tid"):
        raise Problem(403, "forbidden", "the runtime API is for the service and administrators")
    # The signature is not enough: the admin may since have been disabled,
    # demoted or logged out.
    account, revoked = await account_state(
        request.app.state.runtime.store, str(claims["sub"]), str(claims.get("jti", "")), claims.get("fam")
    )
    if revoked or account is None or account.disabled or account.tenant_id != claims["tid"]:
        raise Problem(401, "unauthorized", "the access token is no longer valid", headers={"WWW-Authenticate": "Bearer"})
    if account.role != "admin":
        raise Problem(403, "forbidden", "the runtime API is for the service and administrators")
    return Caller(tenant_id=account.tenant_id)


CallerDep = Annotated[Caller, Depends(caller)]
EngineDep = Annotated[Engine, Depends(engine_of)]


def scoped_tenant(who: Caller, requested: str | None) -> str | None:
    """An admin is pinned to their tenant whatever the query says."""
    return who.tenant_id if who.tenant_id is not None else requested


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intent: str = Field(min_length=1, max_length=200)
    params: dict[str, Any] = Field(default_factory=dict)
    tenant_id: str = Field(min_length=1, max_length=64)
    user_id: str | None = Field(default=None, max_length=36)
    session_id: str | None = Field(default=None, max_length=36)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    parent_id: str | None = Field(default=None, max_length=64)
    retry_of: str | None = Field(default=None, max_length=64)


@router.post("/executions", status_code=202, response_model=dict[str, Any])
async def create_execution(body: CreateBody, who: CallerDep, engine: EngineDep) -> Response:
    created = await create(engine, _create_request(body, who))
    # A Response skips FastAPI's validation and encoding of the answer: the
    # hottest endpoint, and its answer is plain JSON built here.
    return Response(orjson.dumps(created), status_code=202, media_type="application/json")


BATCH_MAX = 256


class CreateBatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Each item is validated alone: one bad item fails alone.
    items: list[Any] = Field(min_length=1, max_length=BATCH_MAX)


@router.post("/executions/batch", response_model=dict[str, Any])
async def create_executions(body: CreateBatchBody, who: CallerDep, engine: EngineDep) -> Response:
    """Several POST /executions in one request: ``{"items": [{"status", "body"}]}``, in order.

    The experience plane sends together the submissions that arrive while
    its earlier requests are in flight: one request's parsing, routing and
    authentication for many executions.
    """
    BATCH_ITEMS.observe(len(body.items))
    requests: list[CreateRequest | Problem] = []
    for item in body.items:
        try:
            requests.append(_create_request(CreateBody.model_validate(item), who))
        except ValidationError as exc:
            requests.append(invalid_request(exc.errors()))
    valid = [request for request in requests if isinstance(request, CreateRequest)]
    created = iter(await engine.create_many(valid))
    answers = []
    for request in requests:
        outcome = request if isinstance(request, Problem) else next(created)
        if isinstance(outcome, Problem):
            answers.append({"status": outcome.status, "body": outcome.body()})
        else:
            assert isinstance(request, CreateRequest)
            answers.append({"status": 202, "body": _answer(request, *outcome)})
    return Response(orjson.dumps({"items": answers}), media_type="application/json")


def _create_request(body: CreateBody, who: Caller) -> CreateRequest:
    return CreateRequest(intent=body.intent, params=body.params, tenant_id=who.tenant_id or body.tenant_id,
                         user_id=body.user_id, session_id=body.session_id, idempotency_key=body.idempotency_key,
                         parent_id=body.parent_id, retry_of=body.retry_of)


async def create(engine: Engine, request: CreateRequest) -> dict[str, Any]:
    """What POST /executions answers; the embedded experience plane calls it in-process."""
    return _answer(request, *await engine.create(request))


def _answer(request: CreateRequest, row: dict[str, Any], duplicate: bool) -> dict[str, Any]:
    if not duplicate:
        EXECUTIONS_CREATED.labels(request.intent).inc()
    return {"execution_id": row["execution_id"], "status": row["status"], "duplicate": duplicate, "execution": row}


@router.get("/executions")
async def list_executions(
    who: CallerDep,
    engine: EngineDep,
    tenant_id: str | None = None,
    session_id: str | None = None,
    user_id: str | None = None,
    status: str | None = None,
    intent: str | None = None,
    parent_id: str | None = None,
    created_after: float | None = None,
    created_before: float | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    query = sa.select(executions)
    filters = {
        "tenant_id": scoped_tenant(who, tenant_id), "session_id": session_id, "user_id": user_id,
        "status": status, "intent": intent, "parent_id": parent_id,
    }
    for column, value in filters.items():
        if value is not None:
            query = query.where(executions.c[column] == value)
    if created_after is not None:
        query = query.where(executions.c.created_at >= created_after)
    if created_before is not None:
        query = query.where(executions.c.created_at < created_before)
    if cursor is not None:  # newest first; the cursor is the last item's (created_at, id)
        try:
            at, _, last_id = cursor.partition("_")
            query = query.where(
                sa.or_(executions.c.created_at < float(at),
                       sa.and_(executions.c.created_at == float(at), executions.c.id < last_id))
            )
        except ValueError:
            raise Problem(422, "invalid_cursor", "the cursor is not one this API returned") from None
    query = query.order_by(executions.c.created_at.desc(), executions.c.id.desc()).limit(limit + 1)
    async with engine.store.read() as conn:
        found = [public_execution(row._mapping) for row in await conn.execute(query)]
    page, more = found[:limit], len(found) > limit
    next_cursor = f"{page[-1]['created_at']!r}_{page[-1]['execution_id']}" if more else None
    return {"items": page, "next_cursor": next_cursor}


async def _execution_or_404(engine: Engine, execution_id: str, tenant_id: str | None) -> dict[str, Any]:
    row = await engine.get(execution_id, tenant_id)
    if row is None:
        raise Problem(404, "not_found", "no such execution")
    return row


@router.get("/executions/{execution_id}")
async def get_execution(
    execution_id: str, who: CallerDep, engine: EngineDep, tenant_id: str | None = None
) -> dict[str, Any]:
    return await _execution_or_404(engine, execution_id, scoped_tenant(who, tenant_id))


@router.post("/executions/{execution_id}/cancel", status_code=202)
async def cancel_execution(
    execution_id: str, who: CallerDep, engine: EngineDep, tenant_id: str | None = None
) -> dict[str, Any]:
    row = await engine.cancel(execution_id, scoped_tenant(who, tenant_id))
    return {"execution_id": execution_id, "status": row["status"], "cancel_requested": row["status"] not in TERMINAL}


@router.get("/executions/{execution_id}/events", response_model=None)
async def execution_events(
    request: Request,
    execution_id: str,
    who: CallerDep,
    engine: EngineDep,
    after: Annotated[int, Query(ge=-1)] = -1,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    tenant_id: str | None = None,
) -> dict[str, Any] | StreamingResponse:
    await _execution_or_404(engine, execution_id, scoped_tenant(who, tenant_id))
    if "text/event-stream" not in request.headers.get("accept", ""):
        return {"items": await read_execution(engine.store, execution_id, after, limit)}
    return StreamingResponse(
        _stream(engine, execution_id, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(engine: Engine, execution_id: str, after: int) -> AsyncIterator[bytes]:
    """The log is the source; a live event only says "read again".

    Subscribing before the first read means nothing can fall in between; a
    look at the log every second covers a bus that dropped a message.
    """
    wake = asyncio.Event()
    unsubscribe = engine.bus.subscribe(
        EVENTS, lambda e: wake.set() if e.get("execution_id") == execution_id else None
    )
    last, idle = after, 0.0
    try:
        while True:
            wake.clear()
            for event in await read_execution(engine.store, execution_id, last):
                last, idle = event["n"], 0.0
                yield b"data: " + orjson.dumps(event) + b"\n\n"
                if event["type"] in OUTCOMES:
                    return
            try:
                await asyncio.wait_for(wake.wait(), 1.0)
            except TimeoutError:
                idle += 1.0
                if idle >= 15:
                    idle = 0.0
                    yield b": keep-alive\n\n"
    finally:
        unsubscribe()


@router.get("/intents")
async def list_intents(request: Request, who: CallerDep, all: bool = False) -> dict[str, Any]:
    registry = request.app.state.runtime.registry
    return {"items": [spec.describe() for spec in registry.specs(include_hidden=all)]}


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    return {"status": "ok", "plane": "runtime", "executor_id": request.app.state.runtime.engine.executor_id}
