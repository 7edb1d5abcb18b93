"""The Experience plane's only way into the Runtime plane: its HTTP API.

One ``httpx.AsyncClient`` per process, authenticated with the service token.
``INTENTD_RUNTIME_URL`` may list several runtime replicas, comma-separated:
requests go to them in turn (executions start on the replica that accepts
them, so this spreads the work without a proxy between the planes).
In embedded mode the transport is the runtime app itself (``ASGITransport``),
so the two planes still meet only through the API, except for the hot path:
a submission calls the runtime's create function in-process (``local_create``),
because the ASGI round trip was a fifth of the CPU of a no-op intent.

Over the network, submissions go in batches (``POST /executions/batch``): one
goes alone at once when a batch slot is free; those that arrive while every
slot waits for its answer go together in the next request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from intentd.batches import Batches
from intentd.config import ConfigError, Settings
from intentd.problems import Problem

# Within the runtime plane's contract, but never reachable by a real request:
# the ASGI transport ignores the host.
_IN_PROCESS_BASE_URL = "http://runtime.internal"
_TIMEOUT = httpx.Timeout(15.0, connect=3.0)

# Takes the JSON body of POST /api/runtime/executions, returns its answer.
LocalCreate = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

# Submission requests in flight at once, per runtime URL. Fewer slots make
# bigger batches (less CPU per execution) and longer waits under load.
BATCH_SLOTS_PER_RUNTIME = 4
BATCH_MAX_ITEMS = 256  # the runtime's limit


class RuntimeClient:
    def __init__(
        self,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
        local_create: LocalCreate | None = None,
    ) -> None:
        self._local_create = local_create
        if transport is not None:
            self._bases = [_IN_PROCESS_BASE_URL]
        else:
            self._bases = [url.strip().rstrip("/") for url in (settings.runtime_url or "").split(",") if url.strip()]
            if not self._bases:
                raise ConfigError("INTENTD_RUNTIME_URL is required to serve the Experience plane alone")
        self._turn = 0
        self._batches = submission_batches(
            self._create_batch, slots=BATCH_SLOTS_PER_RUNTIME * len(self._bases),
            # What the runtime's body limit leaves for the items, with room for the envelope.
            max_bytes=settings.max_body_bytes - 64,
        )
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=_TIMEOUT,
            headers={"Authorization": f"Bearer {settings.service_token}", "Accept": "application/json"},
            # Idle connections expire here before the server (keep-alive 75 s) drops
            # them, so a request never races a server-side close. Few connections,
            # all kept: httpcore checks every pooled connection on each request,
            # and one closed for want of a keep-alive slot is reopened next time.
            # 64 sockets submitting at once: 87/s and 16 ms CPU per intent with
            # 200/50, 155/s and 8.7 ms with 16/16 (requests take ~20 ms here).
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16, keepalive_expiry=30),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def submit(
        self,
        *,
        intent: str,
        params: dict[str, Any],
        tenant_id: str,
        user_id: str | None,
        session_id: str | None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """202 {execution_id, status, duplicate, execution}."""
        body: dict[str, Any] = {
            "intent": intent,
            "params": params,
            "tenant_id": tenant_id,
            "user_id": user_id,
            "session_id": session_id,
        }
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        if self._local_create is not None:
            return await self._local_create(body)
        return await self._batches.submit(orjson.dumps(body))

    async def get_execution(self, execution_id: str, tenant_id: str) -> dict[str, Any]:
        return await self.call(
            "GET", f"/api/runtime/executions/{_segment(execution_id)}", params={"tenant_id": tenant_id}
        )

    async def cancel(self, execution_id: str, tenant_id: str) -> dict[str, Any]:
        return await self.call(
            "POST", f"/api/runtime/executions/{_segment(execution_id)}/cancel", params={"tenant_id": tenant_id}
        )

    async def intents(self) -> list[dict[str, Any]]:
        return (await self.call("GET", "/api/runtime/intents"))["items"]

    async def ready(self) -> bool:
        """Whether any runtime replica answers its health check."""
        for base in self._bases:
            try:
                response = await self._client.get(base + "/api/runtime/health", timeout=3.0)
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                return True
        return False

    async def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise Problem(503, "unavailable", f"the runtime plane is unreachable ({type(exc).__name__})") from exc
        if response.status_code >= 400:
            raise _problem_from(response)
        return orjson.loads(response.content) if response.content else {}

    async def _create_batch(self, items: list[bytes]) -> list[dict[str, Any] | Problem]:
        """POST /executions/batch: each item's answer, or the problem that item met."""
        content = b'{"items":[' + b",".join(items) + b"]}"
        answers = (await self.call("POST", "/api/runtime/executions/batch", content=content,
                                   headers={"Content-Type": "application/json"})).get("items")
        if not isinstance(answers, list) or len(answers) != len(items) or not all(
            isinstance(answer, dict) and isinstance(answer.get("status"), int) for answer in answers
        ):
            raise Problem(502, "bad_gateway", "the runtime plane answered a batch with something else")
        return [answer["body"] if answer["status"] < 400 else _problem_of(answer["status"], answer["body"], None)
                for answer in answers]

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """To the runtime URLs in turn; one that refuses the connection is skipped (nothing was sent to it)."""
        error: httpx.HTTPError | None = None
        for _ in self._bases:
            base = self._bases[self._turn % len(self._bases)]
            self._turn += 1
            try:
                return await self._client.request(method, base + path, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error


def _segment(value: str) -> str:
    """An id as exactly one path segment: no slash smuggles another route in."""
    if value in {"", ".", ".."}:
        raise Problem(404, "not_found", "no such execution")
    return quote(value, safe="")


# Runtime answers the Experience plane relays as they are; the rest are its own faults.
_RELAYED = {400, 404, 409, 413, 422, 429}


def _problem_from(response: httpx.Response) -> Problem:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = {}
    return _problem_of(response.status_code, body, response.headers.get("Retry-After"))


def _problem_of(status: int, body: Any, retry_after: str | None) -> Problem:
    if not isinstance(body, dict):
        body = {}
    if status in _RELAYED and isinstance(body.get("code"), str):
        extra = {k: v for k, v in body.items() if k not in {"type", "title", "status", "code", "detail"}}
        headers = {"Retry-After": retry_after} if retry_after is not None else None
        return Problem(status, body["code"], str(body.get("detail", "")), headers=headers, **extra)
    if status == 503:
        return Problem(503, "unavailable", "the runtime plane is not ready")
    # 401/403 mean our service token is wrong: a deployment fault, not the caller's.
    return Problem(502, "bad_gateway", f"the runtime plane answered {status}")


def submission_batches(
    send: Callable[[list[bytes]], Awaitable[list[dict[str, Any] | Problem]]], *, slots: int, max_bytes: int
) -> Batches[bytes, dict[str, Any]]:
    """Submissions (JSON bodies) grouped into batch requests of at most ``max_bytes`` and ``BATCH_MAX_ITEMS``."""
    return Batches(send, slots=slots, take=partial(_fitting_one_request, max_bytes=max_bytes))


def _fitting_one_request(items: list[bytes], max_bytes: int) -> int:
    """How many of ``items``, from the first, fit one request (at least one)."""
    count, size = 0, 0
    for item in items:
        size += len(item) + 1
        if count and (count == BATCH_MAX_ITEMS or size > max_bytes):
            break
        count += 1
    return count
