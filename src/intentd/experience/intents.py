"""REST intents: submit within a session, read and cancel executions, list intent types.

The Experience plane never executes anything: it checks who is asking and
forwards to the Runtime plane's API with tenant, user and session taken from
the verified credential only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from intentd.experience.identity import experience_state
from intentd.experience.runtime_client import RuntimeClient
from intentd.experience.sessions import (
    Caller,
    SessionAuth,
    session_or_user,
    session_token_auth,
)
from intentd.problems import Problem

router = APIRouter(prefix="/api/intent", tags=["intents"])

INTENT_NAME_MAX = 200
IDEMPOTENCY_KEY_MAX = 200
_TYPE_FIELDS = ("name", "description", "examples", "params_schema", "result_schema")


class SubmitIntent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    intent: str = Field(min_length=1, max_length=INTENT_NAME_MAX)
    params: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=IDEMPOTENCY_KEY_MAX)


async def submit_in_session(
    runtime: RuntimeClient,
    *,
    tenant_id: str,
    user_id: str | None,
    session_id: str,
    intent: str,
    params: dict[str, Any],
    idempotency_key: str | None,
) -> dict[str, Any]:
    """Start an execution in a session: {execution_id, status, duplicate}."""
    created = await runtime.submit(
        intent=intent,
        params=params,
        tenant_id=tenant_id,
        user_id=user_id,
        session_id=session_id,
        idempotency_key=idempotency_key,
    )
    return {
        "execution_id": created["execution_id"],
        "status": created["status"],
        "duplicate": bool(created.get("duplicate", False)),
    }


async def owned_execution(runtime: RuntimeClient, caller: Caller, execution_id: str) -> dict[str, Any]:
    """The execution if the caller's session (or the user's sessions) own it; else 404."""
    if not execution_id or len(execution_id) > 64:
        raise Problem(404, "not_found", "no such execution")
    execution = await runtime.get_execution(execution_id, caller.tenant_id)
    if caller.session_id is not None:
        owned = execution.get("session_id") == caller.session_id
    else:
        owned = caller.user_id is not None and execution.get("user_id") == caller.user_id
    if not owned:
        raise Problem(404, "not_found", "no such execution")
    return execution


def intent_types(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: item.get(key) for key in _TYPE_FIELDS} for item in items]


@router.post("/submit", status_code=202)
async def submit(
    request: Request,
    body: SubmitIntent,
    auth: SessionAuth = Depends(session_token_auth),
    idempotency_key_header: str | None = Header(default=None, alias="Idempotency-Key", max_length=IDEMPOTENCY_KEY_MAX),
) -> JSONResponse:
    state = experience_state(request)
    key = body.idempotency_key or idempotency_key_header
    await state.limiter.check_intent_submission(auth.session_id)
    result = await submit_in_session(
        state.runtime,
        tenant_id=auth.tenant_id,
        user_id=auth.user_id,
        session_id=auth.session_id,
        intent=body.intent,
        params=body.params,
        idempotency_key=key,
    )
    return JSONResponse(result, status_code=202)


@router.get("/executions/{execution_id}")
async def get_execution(
    request: Request, execution_id: str, caller: Caller = Depends(session_or_user)
) -> dict[str, Any]:
    return await owned_execution(experience_state(request).runtime, caller, execution_id)


@router.post("/executions/{execution_id}/cancel", status_code=202)
async def cancel_execution(
    request: Request, execution_id: str, caller: Caller = Depends(session_or_user)
) -> JSONResponse:
    runtime = experience_state(request).runtime
    await owned_execution(runtime, caller, execution_id)
    cancelled = await runtime.cancel(execution_id, caller.tenant_id)
    return JSONResponse({"execution_id": cancelled["execution_id"], "status": cancelled["status"]}, status_code=202)


@router.get("/types")
async def list_types(request: Request, _: Caller = Depends(session_or_user)) -> dict[str, Any]:
    return {"items": intent_types(await experience_state(request).runtime.intents())}
