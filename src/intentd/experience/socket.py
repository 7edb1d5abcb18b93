"""The agent WebSocket (``/api/runtime/agent``) and the read-only session stream (``/api/ws``).

DESIGN §5. Auth and origin failures are reported after the upgrade (an
``error``, then a close code) because browsers cannot read a refused
handshake. Events are delivered by the hub's per-connection cursor; this
module turns client messages into runtime calls and replies.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, Literal

import orjson
import structlog
from fastapi import APIRouter, WebSocket
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from intentd.asgi import json_depth_exceeds
from intentd.experience.hub import CLOSE_UNAUTHORIZED, Connection
from intentd.experience.intents import (
    IDEMPOTENCY_KEY_MAX,
    INTENT_NAME_MAX,
    submit_in_session,
)
from intentd.experience.security import scope_origin_allowed
from intentd.experience.sessions import (
    MAX_SEQ,
    SessionAuth,
    load_session,
    recheck_session,
    verify_session_token,
)
from intentd.gateway.contract import PLANE_HEADER
from intentd.problems import Problem, field_errors

log = structlog.get_logger("intentd.socket")

AGENT_PATH = "/api/runtime/agent"
STREAM_PATH = "/api/ws"
PROTOCOL = 1
AGENT_TURN_INTENT = "agent.turn"
MAX_PROTOCOL_ERRORS = 10  # in a row
# Submissions (`intent`, `message`) one socket may have in flight; the next
# one waits, and with it the socket's reading (backpressure).
SUBMISSIONS_IN_FLIGHT = 32
MAX_TEXT = 64 * 1024
# Re-check the session (expiry, revocation missed while the bus was down) and
# renew its sliding expiry at most this often while the socket is in use.
RECHECK_EVERY = 60.0

CLOSE_TOO_BIG = 1009
CLOSE_TRY_LATER = 1013
CLOSE_PROTOCOL_ERRORS = 4400
CLOSE_FORBIDDEN = 4403
CLOSE_RATE_LIMITED = 4429

router = APIRouter(tags=["sockets"])

_UPGRADE_TEXT = (
    "This endpoint speaks WebSocket only. Connect with a WebSocket client to "
    "{url}, authenticate with a first message {{\"type\":\"auth\",\"session_token\":\"...\"}} "
    "(POST /api/sessions issues a session token), optionally resume with ?after_seq=N.\n"
)


def _upgrade_required(path: str) -> PlainTextResponse:
    return PlainTextResponse(
        _UPGRADE_TEXT.format(url=f"ws(s)://<host>{path}"),
        status_code=426,
        headers={"Upgrade": "websocket", "Connection": "Upgrade"},
    )


@router.get(AGENT_PATH, include_in_schema=False)
async def agent_without_upgrade() -> PlainTextResponse:
    return _upgrade_required(AGENT_PATH)


@router.get(STREAM_PATH, include_in_schema=False)
async def stream_without_upgrade() -> PlainTextResponse:
    return _upgrade_required(STREAM_PATH)


@router.websocket(AGENT_PATH)
async def agent_socket(websocket: WebSocket) -> None:
    await Socket(websocket, read_only=False).serve()


@router.websocket(STREAM_PATH)
async def stream_socket(websocket: WebSocket) -> None:
    await Socket(websocket, read_only=True).serve()


# What the experience app calls for a WebSocket on these paths, around its HTTP middleware.
ENDPOINTS = {AGENT_PATH: agent_socket, STREAM_PATH: stream_socket}


# -- client messages -----------------------------------------------------------

MessageId = Annotated[StrictStr, Field(min_length=1, max_length=200)] | StrictInt


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")


class AuthIn(_In):
    type: Literal["auth"]
    session_token: StrictStr = Field(min_length=1, max_length=256)


class MessageIn(_In):
    id: MessageId
    text: StrictStr = Field(min_length=1, max_length=MAX_TEXT)


class IntentIn(_In):
    id: MessageId
    intent: StrictStr = Field(min_length=1, max_length=INTENT_NAME_MAX)
    params: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: StrictStr | None = Field(default=None, min_length=1, max_length=IDEMPOTENCY_KEY_MAX)


class CancelIn(_In):
    id: MessageId
    execution_id: StrictStr = Field(min_length=1, max_length=64)


class ResumeIn(_In):
    id: MessageId | None = None
    after_seq: StrictInt = Field(ge=0, le=MAX_SEQ)


class PingIn(_In):
    id: MessageId | None = None


class SocketError(Exception):
    """A reply ``error`` to one client message."""

    def __init__(self, code: str, message: str, *, protocol: bool = True, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.protocol = protocol  # counts towards the "10 in a row" limit
        self.extra = extra


# Runtime answers that are the client's fault count as protocol errors; an
# unavailable runtime is not.
_CLIENT_FAULTS = {"unknown_intent", "invalid_params", "idempotency_conflict", "not_found", "invalid_request"}


# What sending raises once the peer has gone.
_PEER_GONE = (OSError, RuntimeError, WebSocketDisconnect)


def _from_problem(problem: Problem) -> SocketError:
    extra = {"errors": problem.extra["errors"]} if "errors" in problem.extra else {}
    return SocketError(problem.code, problem.detail, protocol=problem.code in _CLIENT_FAULTS, **extra)


def _parse(model: type[BaseModel], message: dict[str, Any]) -> Any:
    try:
        return model.model_validate(message)
    except ValidationError as exc:
        raise SocketError(
            "invalid_message", f"invalid {message.get('type')} message", errors=field_errors(exc.errors())
        ) from None


# -- one socket ----------------------------------------------------------------------


class Socket:
    def __init__(self, websocket: WebSocket, *, read_only: bool) -> None:
        self.ws = websocket
        self.read_only = read_only
        self.state = websocket.app.state.experience
        self.settings = self.state.settings
        self.closed = False
        # The close frame could not be sent: the peer had left. What it sent
        # before it left is still read and handled (its intents run).
        self._peer_left = False
        self.auth: SessionAuth | None = None
        self.conn: Connection | None = None
        self._send_lock = asyncio.Lock()
        self._protocol_errors = 0
        self._checked_at = time.monotonic()
        self._slot: str | None = None  # the session whose socket slot this holds
        self._submissions: set[asyncio.Task[None]] = set()
        self._submission_slots = asyncio.Semaphore(SUBMISSIONS_IN_FLIGHT)

    async def serve(self) -> None:
        await self.ws.accept(headers=[(PLANE_HEADER.lower().encode(), b"experience")])
        try:
            await self._serve()
        except Exception as exc:
            await self._failed(exc)
        finally:
            # An execution outlives its socket: what was submitted gets its answer, if only to drop it.
            await asyncio.gather(*self._submissions, return_exceptions=True)
            if self.conn is not None:
                await self.state.hub.unregister(self.conn)
            if self._slot is not None:
                self.state.limiter.sockets.release(self._slot)

    async def _failed(self, exc: Exception) -> None:
        """The peer vanished mid-send, or a bug: never leak the socket."""
        if not isinstance(exc, _PEER_GONE):
            log.exception("socket failed")
        await self.close(1011, "internal error")

    async def _serve(self) -> None:
        if not scope_origin_allowed(self.settings, self.ws.scope):
            await self.close(CLOSE_FORBIDDEN, "origin not allowed", "origin_not_allowed")
            return
        hub = self.state.hub
        if hub.socket_count >= self.settings.sockets_per_process:
            await self.close(CLOSE_TRY_LATER, "at capacity", "at_capacity", "this server has no room for another socket")
            return
        raw_after_seq = self.ws.query_params.get("after_seq")
        if raw_after_seq is not None and not (raw_after_seq.isascii() and raw_after_seq.isdigit() and len(raw_after_seq) <= 18):
            await self.close(
                CLOSE_PROTOCOL_ERRORS, "invalid after_seq", "invalid_message", "after_seq must be an integer >= 0"
            )
            return
        after_seq = int(raw_after_seq) if raw_after_seq is not None else None
        auth = await self._authenticate()
        if auth is None:
            return
        refusal = self.state.limiter.sockets.acquire(auth.session_id)
        if refusal is not None:
            await self.close(refusal.close_code, refusal.code, refusal.code, refusal.message)
            return
        self._slot = auth.session_id
        self.auth = auth
        self.conn = Connection(
            self.state.store, auth.session_id, auth.user_id, self.send, self.close, after_seq=0
        )
        with self.conn.holding():  # nothing is delivered before `ready`
            hub.register(self.conn)
            # last_seq as read with the token: one read per connect. An event
            # recorded between that read and `register` was published before
            # this socket listened; the next event (or the hub's log sweep)
            # makes the cursor fetch it from the log, so nothing is lost.
            last_seq = auth.last_seq
            await self.send({"type": "ready", "session_id": auth.session_id, "last_seq": last_seq, "protocol": PROTOCOL})
            # Replay from after_seq if asked, else go live from last_seq (no log
            # read: most connects ask for nothing old); events recorded
            # meanwhile wait in the connection and are not lost.
            if after_seq is None:
                self.conn.go_live(last_seq)
            else:  # a cursor from the future would silently skip what comes next
                self.conn.replay_from(min(after_seq, last_seq))
        await self._receive_loop()

    async def _authenticate(self) -> SessionAuth | None:
        token = self.ws.query_params.get("session_token")
        if token is None:
            token = await self._await_auth_message()
            if token is None:
                return None
        auth = await verify_session_token(self.state, token)
        if auth is None:
            await self.close(CLOSE_UNAUTHORIZED, "unauthorized", "unauthorized", "the session token is invalid, expired or revoked")
        return auth

    async def _await_auth_message(self) -> str | None:
        try:
            # Not `wait_for`: on 3.11 it runs the receive in a task of its own, on every connect.
            async with asyncio.timeout(self.settings.auth_timeout):
                message = await self.ws.receive()
        except TimeoutError:
            await self.close(
                CLOSE_UNAUTHORIZED, "unauthorized", "unauthorized",
                f"no auth message within {self.settings.auth_timeout:g} s",
            )
            return None
        if message["type"] == "websocket.disconnect":
            self.closed = True
            return None
        try:
            parsed = orjson.loads(message.get("text") or message.get("bytes") or b"")
            return AuthIn.model_validate(parsed).session_token
        except (orjson.JSONDecodeError, ValidationError):
            await self.close(
                CLOSE_UNAUTHORIZED, "unauthorized", "unauthorized",
                'the first message must be {"type":"auth","session_token":"..."}',
            )
            return None

    async def _receive_loop(self) -> None:
        while self._reading:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                self.closed = True
                return
            data = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            if len(data) > self.settings.max_frame_bytes:
                await self.close(CLOSE_TOO_BIG, "frame too big")
                return
            verdict = self.state.limiter.socket_message(self.auth.session_id) if self.auth else "ok"
            if verdict == "close":
                await self.close(CLOSE_RATE_LIMITED, "rate limited", "rate_limited", "too many messages; slow down")
                return
            if verdict == "limited":
                await self.send({"type": "error", "code": "rate_limited", "message": "too many messages; slow down"})
                continue
            await self._handle(data)

    async def _handle(self, data: str | bytes) -> None:
        reply_to = None
        try:
            if json_depth_exceeds(data, self.settings.max_json_depth):
                raise SocketError("invalid_message", f"the message nests deeper than {self.settings.max_json_depth} levels")
            try:
                message = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise SocketError("malformed_json", "the message is not valid JSON") from None
            if not isinstance(message, dict):
                raise SocketError("invalid_message", "a message is a JSON object with a type")
            reply_to = message.get("id") if isinstance(message.get("id"), (str, int)) else None
            kind = message.get("type")
            if not isinstance(kind, str):
                raise SocketError("invalid_message", "the message has no type")
            await self._recheck_session()
            if not self._reading:
                return
            await self._dispatch(kind, message)
            self._protocol_errors = 0
        except SocketError as error:
            await self._reply_error(error, reply_to)
        except Problem as problem:
            await self._reply_error(_from_problem(problem), reply_to)

    async def _dispatch(self, kind: str, message: dict[str, Any]) -> None:
        if kind == "ping":
            await self.send({"type": "pong", "id": _parse(PingIn, message).id})
        elif kind == "message":
            parsed = _parse(MessageIn, message)
            self._require_writable()
            await self._start_submission(parsed.id, AGENT_TURN_INTENT, {"text": parsed.text}, None)
        elif kind == "intent":
            parsed = _parse(IntentIn, message)
            self._require_writable()
            if parsed.intent == AGENT_TURN_INTENT:  # turns start with `message`, which the agent owns
                raise SocketError("unknown_intent", f"no intent named {parsed.intent!r}")
            await self._start_submission(parsed.id, parsed.intent, parsed.params, parsed.idempotency_key)
        elif kind == "cancel":
            await self._cancel(_parse(CancelIn, message))
        elif kind == "resume":
            parsed = _parse(ResumeIn, message)
            assert self.conn is not None
            with self.conn.holding():
                session = await load_session(self.state.store, self.conn.session_id)
                self.conn.replay_from(min(parsed.after_seq, session["last_seq"] if session else 0))
                if parsed.id is not None:
                    await self.send({"type": "ack", "id": parsed.id})
        elif kind == "auth":
            raise SocketError("invalid_message", "this socket is authenticated already")
        else:
            raise SocketError("unknown_type", f"unknown message type {kind[:64]!r}")

    def _require_writable(self) -> None:
        if self.read_only:
            raise SocketError("read_only", f"{STREAM_PATH} is read-only: use {AGENT_PATH} to talk to the agent")

    async def _start_submission(self, message_id: Any, intent: str, params: dict[str, Any], key: str | None) -> None:
        """Submissions run side by side: a client may pipeline intents on one socket
        (each ack names its message), and the runtime gets them together.

        The receive loop never waits for a free slot: were it to stop reading,
        the server would stop taking the socket's bytes, and a peer that sent
        intents and left would lose those not read yet. The message rate limit
        bounds how many wait.
        """
        task = asyncio.create_task(self._submit_and_reply(message_id, intent, params, key))
        self._submissions.add(task)
        task.add_done_callback(self._submissions.discard)

    async def _submit_and_reply(self, message_id: Any, intent: str, params: dict[str, Any], key: str | None) -> None:
        try:
            async with self._submission_slots:
                await self._submit(message_id, intent, params, key)
        except SocketError as error:
            await self._reply_error(error, message_id)
        except Problem as problem:
            await self._reply_error(_from_problem(problem), message_id)
        except _PEER_GONE:
            pass  # no ack to send; the receive loop still submits what the peer sent before it left
        except Exception as exc:
            await self._failed(exc)

    async def _submit(self, message_id: Any, intent: str, params: dict[str, Any], key: str | None) -> None:
        auth, conn = self.auth, self.conn
        assert auth is not None and conn is not None
        wait = await self.state.limiter.intent_submitted(auth.session_id)
        if wait is not None:
            raise SocketError(
                "rate_limited", f"too many intents in this session; retry in {wait:.0f} s",
                protocol=False, retry_after=max(1, round(wait)),
            )
        with conn.holding():  # the ack goes out before the execution's first event
            result = await submit_in_session(
                self.state.runtime,
                tenant_id=auth.tenant_id,
                user_id=auth.user_id,
                session_id=auth.session_id,
                intent=intent,
                params=params,
                idempotency_key=key,
            )
            await self.send(
                {"type": "ack", "id": message_id, "execution_id": result["execution_id"], "duplicate": result["duplicate"]}
            )

    async def _cancel(self, parsed: CancelIn) -> None:
        self._require_writable()
        auth, conn = self.auth, self.conn
        assert auth is not None and conn is not None
        runtime = self.state.runtime
        execution = await runtime.get_execution(parsed.execution_id, auth.tenant_id)
        if execution.get("session_id") != auth.session_id:
            raise SocketError("not_found", "no such execution in this session")
        with conn.holding():
            await runtime.cancel(parsed.execution_id, auth.tenant_id)
            await self.send({"type": "ack", "id": parsed.id, "execution_id": parsed.execution_id})

    async def _recheck_session(self) -> None:
        if time.monotonic() - self._checked_at < RECHECK_EVERY or self.auth is None:
            return
        self._checked_at = time.monotonic()
        if not await recheck_session(self.state.store, self.settings, self.auth.session_id):
            await self.close(CLOSE_UNAUTHORIZED, "unauthorized", "unauthorized", "the session has expired or was revoked")

    async def _reply_error(self, error: SocketError, reply_to: Any) -> None:
        reply: dict[str, Any] = {"type": "error", "code": error.code, "message": error.message, **error.extra}
        if reply_to is not None:
            reply["reply_to"] = reply_to
        await self.send(reply)
        if not error.protocol:
            return
        self._protocol_errors += 1
        if self._protocol_errors >= MAX_PROTOCOL_ERRORS:
            await self.close(
                CLOSE_PROTOCOL_ERRORS, "too many protocol errors", "protocol_errors",
                f"{MAX_PROTOCOL_ERRORS} protocol errors in a row",
            )

    @property
    def _reading(self) -> bool:
        """Not closed by us, or closed only because the peer had left (say, a delivery failed)."""
        return not self.closed or self._peer_left

    # -- output ------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            if self.closed:
                return
            await self.ws.send({"type": "websocket.send", "text": orjson.dumps(message).decode()})

    async def close(self, code: int, reason: str, error_code: str | None = None, message: str | None = None) -> None:
        """Send ``error`` (when ``error_code``) then the close frame; idempotent."""
        async with self._send_lock:
            if self.closed:
                return
            if self.ws.application_state != WebSocketState.CONNECTED:
                # A send failed under us (a delivery to a peer that left): what
                # the peer sent before it left is still read.
                self.closed = self._peer_left = True
                return
            self.closed = True
            try:
                if error_code is not None:
                    error = {"type": "error", "code": error_code, "message": message or reason}
                    await self.ws.send({"type": "websocket.send", "text": orjson.dumps(error).decode()})
                await self.ws.close(code, reason[:120])
            except Exception:  # the peer is gone already
                self._peer_left = True
