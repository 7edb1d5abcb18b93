"""``AsyncClient``: the REST API (login, sessions, intents) over httpx."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import httpx

from intentd.client.errors import ConnectionFailed, IntentdError

if TYPE_CHECKING:
    from intentd.client.agent_socket import AgentSocket, Backoff

JSON = dict[str, Any]
Credential = Literal["access", "session", "any", "none"]
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


class AsyncClient:
    """A client of one intentd deployment, reachable at one or more base URLs.

    Requests go to the first URL that accepts a connection (a URL that refuses
    one is skipped for the next). ``login`` keeps the access and refresh tokens
    and refreshes once on a 401; ``create_session`` keeps the session token,
    which the intent calls use.
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        *,
        access_token: str | None = None,
        refresh_token: str | None = None,
        session_token: str | None = None,
        session_id: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("give at least one base URL")
        self.base_urls = [url.rstrip("/") for url in urls]
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.session_token = session_token
        self.session_id = session_id
        self._current = 0
        self._http = httpx.AsyncClient(timeout=timeout, headers={"User-Agent": "intentd-client"})

    @property
    def current_url(self) -> str:
        """The base URL the last request went to."""
        return self.base_urls[self._current]

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- transport ----------------------------------------------------------

    def _token(self, credential: Credential) -> str | None:
        if credential == "access":
            return self.access_token
        if credential == "session":
            return self.session_token
        if credential == "any":
            return self.access_token or self.session_token
        return None

    async def _send(self, method: str, path: str, token: str | None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        errors = []
        for offset in range(len(self.base_urls)):
            index = (self._current + offset) % len(self.base_urls)
            try:
                response = await self._http.request(method, self.base_urls[index] + path, headers=headers, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # nothing was sent: safe to try the next URL, even for a POST
                errors.append(f"{self.base_urls[index]}: {exc.__class__.__name__}")
                continue
            except httpx.TransportError as exc:
                # the request may have reached the server: not retried elsewhere
                raise IntentdError(
                    None, "transport_error", f"{method} {self.base_urls[index]}{path}: {exc.__class__.__name__}"
                ) from exc
            self._current = index
            return response
        raise ConnectionFailed("cannot connect to " + "; ".join(errors))

    async def request(
        self,
        method: str,
        path: str,
        *,
        credential: Credential = "any",
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """The decoded JSON answer (None for 204); problem answers raise ``IntentdError``."""
        kwargs: dict[str, Any] = {"params": {k: v for k, v in (params or {}).items() if v is not None}}
        if json is not None:
            kwargs["json"] = json
        token = self._token(credential)
        response = await self._send(method, path, token, **kwargs)
        if (
            response.status_code == 401
            and token is not None
            and token == self.access_token
            and self.refresh_token
            and path != "/api/auth/refresh"
        ):
            await self.refresh()
            response = await self._send(method, path, self._token(credential), **kwargs)
        if response.status_code >= 400:
            raise _problem(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # -- auth ---------------------------------------------------------------

    async def login(self, email: str, password: str) -> JSON:
        tokens = await self.request(
            "POST", "/api/auth/login", credential="none", json={"email": email, "password": password}
        )
        self.access_token, self.refresh_token = tokens["access_token"], tokens["refresh_token"]
        return tokens

    async def refresh(self) -> JSON:
        if not self.refresh_token:
            raise IntentdError(None, "no_refresh_token", "log in first")
        tokens = await self.request(
            "POST", "/api/auth/refresh", credential="none", json={"refresh_token": self.refresh_token}
        )
        self.access_token, self.refresh_token = tokens["access_token"], tokens["refresh_token"]
        return tokens

    async def logout(self) -> None:
        body = {"refresh_token": self.refresh_token} if self.refresh_token else {}
        await self.request("POST", "/api/auth/logout", credential="access", json=body)
        self.access_token = self.refresh_token = None

    async def me(self) -> JSON:
        return await self.request("GET", "/api/auth/me", credential="access")

    # -- sessions -----------------------------------------------------------

    async def create_session(self, metadata: JSON | None = None, context: JSON | None = None) -> JSON:
        """Open a session; its token becomes this client's session token."""
        body: JSON = {}
        if metadata is not None:
            body["metadata"] = metadata
        if context is not None:
            body["context"] = context
        created = await self.request("POST", "/api/sessions", credential="access", json=body)
        self.session_token, self.session_id = created["session_token"], created["session_id"]
        return created

    async def list_sessions(self, active: bool | None = None) -> list[JSON]:
        params = {"active": None if active is None else str(active).lower()}
        return (await self.request("GET", "/api/sessions", credential="access", params=params))["items"]

    def _session(self, session_id: str | None) -> str:
        session_id = session_id or self.session_id
        if not session_id:
            raise IntentdError(None, "no_session", "create a session first or pass session_id")
        return session_id

    async def get_session(self, session_id: str | None = None) -> JSON:
        return await self.request("GET", f"/api/sessions/{self._session(session_id)}")

    async def revoke_session(self, session_id: str | None = None) -> None:
        await self.request("DELETE", f"/api/sessions/{self._session(session_id)}", credential="access")

    async def get_context(self, session_id: str | None = None) -> JSON:
        return (await self.request("GET", f"/api/sessions/{self._session(session_id)}/context"))["context"]

    async def patch_context(self, patch: JSON, session_id: str | None = None) -> JSON:
        """JSON merge patch: a None value deletes the key."""
        path = f"/api/sessions/{self._session(session_id)}/context"
        return (await self.request("PATCH", path, json={"context": patch}))["context"]

    async def events(self, after_seq: int = 0, limit: int | None = None, session_id: str | None = None) -> JSON:
        """{items, last_seq}: the session's events after ``after_seq``."""
        path = f"/api/sessions/{self._session(session_id)}/events"
        return await self.request("GET", path, params={"after_seq": after_seq, "limit": limit})

    # -- intents ------------------------------------------------------------

    async def submit(self, intent: str, params: JSON | None = None, idempotency_key: str | None = None) -> JSON:
        """{execution_id, status, duplicate}; needs a session token."""
        body: JSON = {"intent": intent, "params": params or {}}
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        return await self.request("POST", "/api/intent/submit", credential="session", json=body)

    async def execution(self, execution_id: str) -> JSON:
        return await self.request("GET", f"/api/intent/executions/{execution_id}")

    async def cancel(self, execution_id: str) -> JSON:
        return await self.request("POST", f"/api/intent/executions/{execution_id}/cancel")

    async def intent_types(self) -> list[JSON]:
        return (await self.request("GET", "/api/intent/types"))["items"]

    async def wait_for_execution(self, execution_id: str, *, timeout: float | None = None, poll: float = 0.25) -> JSON:
        """Poll until the execution has finished; returns the Execution."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            execution = await self.execution(execution_id)
            if execution["status"] in TERMINAL_STATUSES:
                return execution
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"execution {execution_id} is still {execution['status']} after {timeout} s")
            await asyncio.sleep(poll)

    # -- agent socket -------------------------------------------------------

    async def connect_agent(
        self,
        session_token: str | None = None,
        after_seq: int | None = 0,
        *,
        read_only: bool = False,
        backoff: Backoff | None = None,
        max_retries: int | None = None,
    ) -> AgentSocket:
        """An open ``AgentSocket`` on this client's URLs (``/api/ws`` when ``read_only``).

        ``after_seq``: replay the session's events after this seq first (0: all
        of them); None: live events only.
        """
        from intentd.client.agent_socket import AgentSocket, Backoff

        token = session_token or self.session_token
        if not token:
            raise IntentdError(None, "no_session", "create a session first or pass session_token")
        path = "/api/ws" if read_only else "/api/runtime/agent"
        urls = [_ws_url(url) + path for url in self.base_urls]
        sock = AgentSocket(
            urls, token, after_seq=after_seq, client=self, backoff=backoff or Backoff(), max_retries=max_retries
        )
        await sock.connect()
        return sock


def _ws_url(http_url: str) -> str:
    if http_url.startswith("https://"):
        return "wss://" + http_url[len("https://") :]
    if http_url.startswith("http://"):
        return "ws://" + http_url[len("http://") :]
    return http_url


def _problem(response: httpx.Response) -> IntentdError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return IntentdError(response.status_code, f"http_{response.status_code}", response.text[:500])
    detail = body.get("detail")
    return IntentdError(
        response.status_code,
        str(body.get("code") or f"http_{response.status_code}"),
        detail if isinstance(detail, str) else str(body.get("title") or detail or ""),
        body,
    )
