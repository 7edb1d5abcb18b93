"""The Experience plane's only way into the Runtime plane: its HTTP API.

One ``httpx.AsyncClient`` per process, authenticated with the service token.
``INTENTD_RUNTIME_URL`` may list several runtime replicas, comma-separated:
requests go to them in turn (executions start on the replica that accepts
them, so this spreads the work without a proxy between the planes).
In embedded mode the transport is the runtime app itself (``ASGITransport``),
so the two planes still meet only through the API, except for the hot path:
a submission calls the runtime's create function in-process (``local_create``),
because the ASGI round trip was a fifth of the CPU of a no-op intent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from intentd.config import ConfigError, Settings
from intentd.problems import Problem

# Within the runtime plane's contract, but never reachable by a real request:
# the ASGI transport ignores the host.
_IN_PROCESS_BASE_URL = "http://runtime.internal"
_TIMEOUT = httpx.Timeout(15.0, connect=3.0)

# Takes the JSON body of POST /api/runtime/executions, returns its answer.
LocalCreate = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


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
        return await self.call("POST", "/api/runtime/executions", json=body)

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
    if not isinstance(body, dict):
        body = {}
    if response.status_code in _RELAYED and isinstance(body.get("code"), str):
        extra = {k: v for k, v in body.items() if k not in {"type", "title", "status", "code", "detail"}}
        headers = {"Retry-After": response.headers["Retry-After"]} if "Retry-After" in response.headers else None
        return Problem(response.status_code, body["code"], str(body.get("detail", "")), headers=headers, **extra)
    if response.status_code == 503:
        return Problem(503, "unavailable", "the runtime plane is not ready")
    # 401/403 mean our service token is wrong: a deployment fault, not the caller's.
    return Problem(502, "bad_gateway", f"the runtime plane answered {response.status_code}")
