"""`intentd verify`: the seed's manual gateway checks, automated, each with a diagnosis.

Steps (issue 6): 1 Traefik's routers match the contract; 2 the agent socket
upgrades (directly and through the gateway); 3 token validation reports 4401
after the upgrade; 4 origins are checked (4403 for a foreign one); 5 an idle
socket survives; 6 every contract path reaches its owner (X-Intentd-Plane).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from intentd.gateway.contract import CONTRACT, PLANE_HEADER, Route
from intentd.gateway.render import NOT_ROUTED, traefik_rule
from intentd.gateway.routing import Router, gateway_routers, gateway_target

AGENT_PATH = "/api/runtime/agent"
INVALID_TOKEN = "intentd-verify-invalid-token"
FOREIGN_ORIGIN = "https://foreign.intentd-verify.invalid"
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
_RERENDER = "re-render the gateway config (`intentd routes render`) and reload the proxy"
_WS_TIMEOUTS = (
    "the gateway's idle timeout cut the socket: nginx needs proxy_read_timeout/proxy_send_timeout "
    "3600s on WebSocket locations (default 60 s); Traefik needs entrypoint respondingTimeouts "
    "readTimeout=0s, writeTimeout=0s, idleTimeout=3600s"
)


@dataclass(frozen=True, slots=True)
class StepResult:
    step: str  # "1", "2", ... as in the issue
    name: str
    ok: bool | None  # None: skipped
    detail: str = ""
    diagnosis: str = ""

    @property
    def status(self) -> str:
        return "skip" if self.ok is None else ("pass" if self.ok else "FAIL")


@dataclass
class VerifyOptions:
    base_url: str
    traefik_api: str | None = None
    experience_url: str | None = None
    origin: str | None = None  # an allowed origin; default: the base URL's own
    idle: float = 75.0
    session_token: str | None = None
    email: str | None = None
    password: str | None = None
    timeout: float = 10.0
    contract: tuple[Route, ...] = CONTRACT
    progress: Callable[[str], None] = field(default=lambda _message: None)

    @property
    def allowed_origin(self) -> str:
        if self.origin:
            return self.origin
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"


def all_passed(results: list[StepResult]) -> bool:
    return all(result.ok is not False for result in results)


async def run_verify(options: VerifyOptions) -> list[StepResult]:
    results: list[StepResult] = []
    options.base_url = options.base_url.rstrip("/")
    async with httpx.AsyncClient(timeout=options.timeout, follow_redirects=False) as http:
        if options.traefik_api:
            options.progress("1 Traefik routers")
            results += await check_traefik_routers(http, options)
        options.progress("2 WebSocket upgrade")
        if options.experience_url:
            results.append(await check_upgrade(options, options.experience_url, "directly (--experience)"))
        results.append(await check_upgrade(options, options.base_url, "through the gateway"))
        token, token_results = await _session_token(http, options)
        results += token_results
        options.progress("3 session tokens")
        results.append(await check_bad_token(options))
        results.append(await check_good_token(options, token))
        options.progress("4 origins")
        results.append(await check_allowed_origin(options, token))
        results.append(await check_foreign_origin(options, token))
        options.progress(f"5 idle socket ({options.idle:g} s)")
        results.append(await check_idle(options, token))
        options.progress("6 contract paths")
        results += await check_owners(http, options)
    return results


# --- 1: Traefik ------------------------------------------------------------------------


async def check_traefik_routers(http: httpx.AsyncClient, options: VerifyOptions) -> list[StepResult]:
    url = f"{options.traefik_api.rstrip('/')}/api/http/routers"  # type: ignore[union-attr]
    try:
        response = await http.get(url, params={"per_page": 1000})
        response.raise_for_status()
        deployed: list[dict[str, Any]] = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return [
            StepResult(
                "1",
                "Traefik API",
                False,
                f"GET {url}: {_describe_error(exc)}",
                "the Traefik API is not reachable there: it listens on the `traefik` entrypoint "
                "(:8080, api.insecure in traefik.yml); pass its URL as --traefik-api",
            )
        ]
    results = [_traefik_router_result(router, deployed) for router in gateway_routers(options.contract)]
    broken = [r for r in deployed if r.get("status") != "enabled" or r.get("error")]
    results.append(
        StepResult(
            "1",
            "Traefik routers without errors",
            not broken,
            ", ".join(f"{r.get('name')}: {r.get('status')} {r.get('error') or ''}".strip() for r in broken)
            or f"{len(deployed)} routers enabled",
            "fix the routers Traefik reports (see its log); a router with an error does not route"
            if broken
            else "",
        )
    )
    return results


def _traefik_router_result(router: Router, deployed: list[dict[str, Any]]) -> StepResult:
    rule = traefik_rule(router.prefix)
    name = f"router {router.prefix}"
    found = [r for r in deployed if " ".join(r.get("rule", "").split()) == rule]
    found = found or [r for r in deployed if r.get("name", "").split("@")[0] == router.name]
    if not found:
        return StepResult(
            "1",
            name,
            False,
            f"no router with rule {rule}",
            f"Traefik does not know {router.prefix}: {_RERENDER}",
        )
    deployed_router = found[0]
    service = deployed_router.get("service", "").split("@")[0]
    problems = []
    if router.target is None:
        if not any(m.split("@")[0] == NOT_ROUTED for m in deployed_router.get("middlewares", [])):
            problems.append(f"it is routed publicly (no {NOT_ROUTED} middleware)")
    elif service != router.target:
        problems.append(f"its service is {service}, the contract owner is {router.target}")
    if deployed_router.get("priority") != router.priority:
        problems.append(f"priority {deployed_router.get('priority')}, expected {router.priority}")
    if deployed_router.get("status") != "enabled" or deployed_router.get("error"):
        problems.append(
            f"status {deployed_router.get('status')} {deployed_router.get('error') or ''}".strip()
        )
    name_, service_, priority = (deployed_router.get(k) for k in ("name", "service", "priority"))
    detail = f"{name_} -> {service_} (priority {priority})"
    if problems:
        return StepResult("1", name, False, detail, "; ".join(problems) + f": {_RERENDER}")
    return StepResult("1", name, True, detail)


# --- 2-5: the agent socket -------------------------------------------------------------


def ws_url(base_url: str, path: str, token: str | None = None) -> str:
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    url = f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}{path}"
    return f"{url}?session_token={quote(token)}" if token else url


@dataclass
class _SocketOutcome:
    """What happened to one connection attempt."""

    upgraded: bool
    status: int | None = None  # HTTP status when the upgrade was refused
    plane: str | None = None  # X-Intentd-Plane of the refusal, if any
    error: str = ""  # connection-level failure
    messages: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None

    def first(self, type_: str) -> dict[str, Any] | None:
        return next((m for m in self.messages if m.get("type") == type_), None)


async def _open(
    options: VerifyOptions,
    base_url: str,
    token: str | None,
    *,
    origin: str | None,
    until: Callable[[ClientConnection, _SocketOutcome], Awaitable[None]],
) -> _SocketOutcome:
    """Connect to the agent socket and run ``until`` on it; report what happened."""
    url = ws_url(base_url, AGENT_PATH, token)
    try:
        async with connect(
            url,
            origin=origin,  # type: ignore[arg-type]
            open_timeout=options.timeout,
            ping_interval=None,  # an idle client must really be idle (step 5)
            close_timeout=2,
        ) as socket:
            outcome = _SocketOutcome(upgraded=True)
            try:
                await until(socket, outcome)
            except ConnectionClosed as exc:
                outcome.close_code = exc.rcvd.code if exc.rcvd else 1006
            return outcome
    except InvalidStatus as exc:
        return _SocketOutcome(False, exc.response.status_code, exc.response.headers.get(PLANE_HEADER))
    except (InvalidHandshake, OSError, TimeoutError) as exc:
        return _SocketOutcome(False, error=_describe_error(exc))


async def _read_until_closed(socket: ClientConnection, outcome: _SocketOutcome, timeout: float) -> None:
    """Collect messages until the server closes (raises ConnectionClosed) or ``timeout``."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            raw = await asyncio.wait_for(socket.recv(), remaining)
        except TimeoutError:
            return
        outcome.messages.append(_parse(raw))


async def _read_until(socket: ClientConnection, outcome: _SocketOutcome, type_: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            raw = await asyncio.wait_for(socket.recv(), remaining)
        except TimeoutError:
            return False
        message = _parse(raw)
        outcome.messages.append(message)
        if message.get("type") in (type_, "error"):
            return message.get("type") == type_
    return False


def _parse(raw: str | bytes) -> dict[str, Any]:
    try:
        message = json.loads(raw)
    except ValueError:
        return {"type": "<not json>", "raw": str(raw)[:80]}
    return message if isinstance(message, dict) else {"type": "<not an object>"}


def _handshake_diagnosis(outcome: _SocketOutcome, where: str) -> str:
    if outcome.error:
        return f"cannot connect {where}: {outcome.error}; is the gateway/plane listening at that address?"
    status, plane = outcome.status, outcome.plane
    answered = (
        f"answered by the {plane} plane"
        if plane
        else f"no {PLANE_HEADER} header: the proxy or an unknown server answered"
    )
    if status in (502, 503, 504):
        return (
            f"HTTP {status} ({answered}): the gateway has no healthy upstream for {AGENT_PATH}; "
            "is the experience plane running, and does the gateway send this path to it?"
        )
    if status == 403:
        if plane == "runtime":
            return (
                f"HTTP 403 from the runtime plane: the gateway routes {AGENT_PATH} to runtime, "
                f"the contract owner is experience: {_RERENDER}"
            )
        return (
            f"HTTP 403 before the upgrade ({answered}): a server without this WebSocket route refused it "
            f"(typically {AGENT_PATH} routed to the runtime plane; see step 6), or a proxy blocked the upgrade"
        )
    if status == 404:
        return f"HTTP 404 ({answered}): nothing serves {AGENT_PATH} there; the gateway lacks the route"
    if status in (400, 426):
        return (
            f"HTTP {status} ({answered}): the request reached the plane without its Upgrade headers; "
            "the proxy must forward them (nginx: proxy_http_version 1.1, proxy_set_header Upgrade $http_upgrade, "
            "Connection $connection_upgrade)"
        )
    return f"HTTP {status} instead of 101 ({answered})"


async def check_upgrade(options: VerifyOptions, base_url: str, where: str) -> StepResult:
    async def settle(socket: ClientConnection, outcome: _SocketOutcome) -> None:
        await _read_until_closed(socket, outcome, 1.0)

    outcome = await _open(options, base_url, INVALID_TOKEN, origin=options.allowed_origin, until=settle)
    name = f"upgrade {AGENT_PATH} {where}"
    if outcome.upgraded:
        return StepResult("2", name, True, f"101 Switching Protocols from {ws_url(base_url, AGENT_PATH)}")
    return StepResult("2", name, False, _outcome_text(outcome), _handshake_diagnosis(outcome, where))


def _after_step2(outcome: _SocketOutcome) -> str:
    """Later steps whose socket did not upgrade: the cause is step 2's; say so briefly."""
    return f"the WebSocket upgrade itself fails ({_outcome_text(outcome)}): see step 2's diagnosis"


def _outcome_text(outcome: _SocketOutcome) -> str:
    if not outcome.upgraded:
        if outcome.error:
            return outcome.error
        return f"HTTP {outcome.status}" + (f", {PLANE_HEADER}: {outcome.plane}" if outcome.plane else "")
    parts = [m.get("type", "?") + (f" {m['code']}" if m.get("code") else "") for m in outcome.messages]
    closed = f"closed {outcome.close_code}" if outcome.close_code else "open"
    return ", ".join([*parts, closed])


async def check_bad_token(options: VerifyOptions) -> StepResult:
    async def read(socket: ClientConnection, outcome: _SocketOutcome) -> None:
        await _read_until_closed(socket, outcome, options.timeout)

    outcome = await _open(options, options.base_url, INVALID_TOKEN, origin=options.allowed_origin, until=read)
    name = "invalid session token gets 4401"
    if not outcome.upgraded:
        return StepResult(
            "3",
            name,
            False,
            _outcome_text(outcome),
            f"got {_outcome_text(outcome)} instead of an upgrade and then a 4401 close: see step 2's diagnosis",
        )
    if outcome.close_code == CLOSE_UNAUTHORIZED:
        return StepResult("3", name, True, _outcome_text(outcome))
    if outcome.first("ready"):
        return StepResult(
            "3", name, False, _outcome_text(outcome), "the server accepted an invalid session token"
        )
    return StepResult("3", name, False, _outcome_text(outcome), _close_diagnosis(outcome, CLOSE_UNAUTHORIZED))


def _close_diagnosis(outcome: _SocketOutcome, expected: int) -> str:
    if outcome.close_code == 1006:
        return (
            f"closed without a close frame (1006) instead of {expected}: "
            "a proxy between client and plane dropped the connection"
        )
    if outcome.close_code is None:
        return f"the socket stayed open without closing {expected} within the timeout"
    return f"closed {outcome.close_code}, expected {expected}"


async def check_good_token(options: VerifyOptions, token: str | None) -> StepResult:
    name = "valid session token gets ready"
    if token is None:
        return StepResult("3", name, None, "no token: pass --session-token, or --email and --password")
    return await _expect_ready(options, token, options.allowed_origin, "3", name)


async def _expect_ready(options: VerifyOptions, token: str, origin: str, step: str, name: str) -> StepResult:
    async def read(socket: ClientConnection, outcome: _SocketOutcome) -> None:
        await _read_until(socket, outcome, "ready", options.timeout)

    outcome = await _open(options, options.base_url, token, origin=origin, until=read)
    if outcome.first("ready"):
        return StepResult(step, name, True, _outcome_text(outcome))
    if not outcome.upgraded:
        return StepResult(step, name, False, _outcome_text(outcome), _after_step2(outcome))
    if outcome.close_code == CLOSE_UNAUTHORIZED:
        diagnosis = (
            "the session token was refused (expired, revoked, or from another deployment's secret key)"
        )
    elif outcome.close_code == CLOSE_FORBIDDEN:
        diagnosis = f"origin {origin} is not allowed: add it to INTENTD_CORS_ORIGINS"
    else:
        diagnosis = "no ready message: " + _close_diagnosis(outcome, 1000)
    return StepResult(step, name, False, _outcome_text(outcome), diagnosis)


async def check_allowed_origin(options: VerifyOptions, token: str | None) -> StepResult:
    origin = options.allowed_origin
    name = f"origin {origin} accepted"
    if token is not None:
        return await _expect_ready(options, token, origin, "4", name)

    # Without a valid token, acceptance shows as reaching the token check (4401), not 4403.
    async def read(socket: ClientConnection, outcome: _SocketOutcome) -> None:
        await _read_until_closed(socket, outcome, options.timeout)

    outcome = await _open(options, options.base_url, INVALID_TOKEN, origin=origin, until=read)
    if outcome.upgraded and outcome.close_code == CLOSE_UNAUTHORIZED:
        return StepResult("4", name, True, _outcome_text(outcome) + " (origin passed, invalid token refused)")
    if outcome.close_code == CLOSE_FORBIDDEN:
        return StepResult(
            "4",
            name,
            False,
            _outcome_text(outcome),
            f"origin {origin} is not allowed: add it to INTENTD_CORS_ORIGINS",
        )
    diagnosis = (
        _after_step2(outcome) if not outcome.upgraded else _close_diagnosis(outcome, CLOSE_UNAUTHORIZED)
    )
    return StepResult("4", name, False, _outcome_text(outcome), diagnosis)


async def check_foreign_origin(options: VerifyOptions, token: str | None) -> StepResult:
    async def read(socket: ClientConnection, outcome: _SocketOutcome) -> None:
        await _read_until_closed(socket, outcome, options.timeout)

    outcome = await _open(
        options, options.base_url, token or INVALID_TOKEN, origin=FOREIGN_ORIGIN, until=read
    )
    name = "foreign origin gets 4403"
    if outcome.upgraded and outcome.close_code == CLOSE_FORBIDDEN:
        return StepResult("4", name, True, _outcome_text(outcome))
    if not outcome.upgraded:
        if outcome.status == 403:
            diagnosis = (
                "refused with HTTP 403 before the upgrade: browsers cannot read that; "
                "the plane must upgrade, then close 4403 (is a proxy filtering origins?)"
            )
        else:
            diagnosis = _after_step2(outcome)
        return StepResult("4", name, False, _outcome_text(outcome), diagnosis)
    if outcome.first("ready"):
        diagnosis = (
            "a foreign origin was accepted: cross-site WebSocket hijacking is possible; "
            "check INTENTD_CORS_ORIGINS (no '*')"
        )
    else:
        diagnosis = _close_diagnosis(outcome, CLOSE_FORBIDDEN)
    return StepResult("4", name, False, _outcome_text(outcome), diagnosis)


async def check_idle(options: VerifyOptions, token: str | None) -> StepResult:
    name = f"idle socket survives {options.idle:g} s"
    if options.idle <= 0:
        return StepResult("5", name, None, "--idle 0")
    if token is None:
        return StepResult("5", name, None, "no token: pass --session-token, or --email and --password")
    lasted: dict[str, float] = {}

    async def idle(socket: ClientConnection, outcome: _SocketOutcome) -> None:
        if not await _read_until(socket, outcome, "ready", options.timeout):
            return
        started = time.monotonic()
        # Send nothing; the connection answers the server's pings by itself.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(socket.wait_closed(), options.idle)
        lasted["seconds"] = time.monotonic() - started
        await socket.send(json.dumps({"type": "ping", "id": "verify-idle"}))
        await _read_until(socket, outcome, "pong", options.timeout)

    outcome = await _open(options, options.base_url, token, origin=options.allowed_origin, until=idle)
    if outcome.first("pong"):
        return StepResult("5", name, True, f"pong after {lasted['seconds']:.0f} s idle")
    if not outcome.upgraded:
        return StepResult("5", name, False, _outcome_text(outcome), _after_step2(outcome))
    if not outcome.first("ready"):
        return StepResult(
            "5", name, False, _outcome_text(outcome), "the socket never became ready (see step 3)"
        )
    seconds = lasted.get("seconds", 0.0)
    detail = f"{_outcome_text(outcome)} after {seconds:.0f} s idle"
    if outcome.close_code == 1006 or (outcome.close_code is None and seconds < options.idle):
        return StepResult("5", name, False, detail, _WS_TIMEOUTS)
    return StepResult(
        "5", name, False, detail, "the server closed the idle socket: " + _close_diagnosis(outcome, 1000)
    )


# --- sessions --------------------------------------------------------------------------


async def _session_token(
    http: httpx.AsyncClient, options: VerifyOptions
) -> tuple[str | None, list[StepResult]]:
    if options.session_token:
        return options.session_token, []
    if not (options.email and options.password):
        return None, []
    name = "create a session (--email/--password)"
    try:
        login = await http.post(
            f"{options.base_url}/api/auth/login", json={"email": options.email, "password": options.password}
        )
        if login.status_code != 200:
            return None, [
                StepResult(
                    "3",
                    name,
                    False,
                    f"POST /api/auth/login: {_problem(login)}",
                    "check the credentials (and that /api/auth reaches experience, step 6)",
                )
            ]
        access = login.json()["access_token"]
        created = await http.post(
            f"{options.base_url}/api/sessions", json={}, headers={"Authorization": f"Bearer {access}"}
        )
        if created.status_code not in (200, 201):
            return None, [
                StepResult(
                    "3",
                    name,
                    False,
                    f"POST /api/sessions: {_problem(created)}",
                    "the account cannot open sessions",
                )
            ]
        return created.json()["session_token"], [StepResult("3", name, True, "session created")]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return None, [
            StepResult(
                "3", name, False, _describe_error(exc), "the API did not answer as DESIGN §4 says; see step 6"
            )
        ]


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"HTTP {response.status_code} {body.get('code', '')}: {body.get('detail', '')}".strip()
    except ValueError:
        return f"HTTP {response.status_code}"


# --- 6: owners ---------------------------------------------------------------------------


async def check_owners(http: httpx.AsyncClient, options: VerifyOptions) -> list[StepResult]:
    results = []
    for router in gateway_routers(options.contract):
        results.append(await _check_owner(http, options, router))
    results.append(await _check_segments(http, options))
    return results


async def _probe(http: httpx.AsyncClient, url: str) -> tuple[int | None, str | None, str]:
    try:
        response = await http.get(url)
    except httpx.HTTPError as exc:
        return None, None, _describe_error(exc)
    return response.status_code, response.headers.get(PLANE_HEADER), ""


async def _check_owner(http: httpx.AsyncClient, options: VerifyOptions, router: Router) -> StepResult:
    path = router.prefix
    status, plane, error = await _probe(http, options.base_url + path)
    expected = router.target
    name = f"{path} -> {expected or '404 (not routed)'}"
    detail = error or f"HTTP {status}, {PLANE_HEADER}: {plane or '-'}"
    if error:
        return StepResult("6", name, False, detail, "the gateway is not reachable at BASE_URL")
    if expected is None:
        if plane is None and status == 404:
            return StepResult("6", name, True, detail)
        return StepResult(
            "6",
            name,
            False,
            detail,
            f"{path} is an operational endpoint: the gateway must answer 404, not forward it; {_RERENDER}",
        )
    if plane == expected:
        return StepResult("6", name, True, detail)
    if plane:
        return StepResult(
            "6",
            name,
            False,
            detail,
            f"reached {plane}, the contract owner is {expected}: "
            f"the gateway routes {path} to the wrong plane; {_RERENDER}",
        )
    if status in (502, 503, 504):
        return StepResult(
            "6",
            name,
            False,
            detail,
            f"the gateway could not reach the {expected} plane: is it running, and is the upstream address right?",
        )
    return StepResult(
        "6",
        name,
        False,
        detail,
        f"no {PLANE_HEADER} header: the gateway itself answered (no route for {path}?) or the server is not intentd",
    )


async def _check_segments(http: httpx.AsyncClient, options: VerifyOptions) -> StepResult:
    """Near misses (/api/runtimex) must fall through to the console, not to the prefix's owner."""
    wrong = []
    for router in gateway_routers(options.contract):
        if router.prefix == "/":
            continue
        path = router.prefix + "x"
        expected = gateway_target(path, options.contract)
        status, plane, error = await _probe(http, options.base_url + path)
        if error or plane != expected:
            wrong.append(f"{path} -> {plane or error or f'HTTP {status}'} (expected {expected})")
    if wrong:
        return StepResult(
            "6",
            "prefixes are segment-bounded",
            False,
            "; ".join(wrong),
            f"the gateway matches prefixes as plain strings: {_RERENDER}",
        )
    return StepResult(
        "6", "prefixes are segment-bounded", True, "near misses such as /api/runtimex reach the console"
    )


def _describe_error(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
