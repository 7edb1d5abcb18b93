"""``intentd chat``: a terminal chat with a session's agent, built on the SDK.

The agent's reply streams in as it is written (``agent.delta``), the intents
it runs show as progress bars, and Ctrl-C during a turn cancels it. ``/quit``
(or end of input) leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from dataclasses import dataclass, field
from typing import Any

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
)
from rich.text import Text

from intentd.client import AgentSocket, AsyncClient, IntentdError

TURN_INTENT = "agent.turn"
QUIT_COMMANDS = frozenset({"/quit", "/exit"})
_TERMINAL = {"execution.completed": "completed", "execution.failed": "failed", "execution.cancelled": "cancelled"}


class StatusColumn(SpinnerColumn):
    """A spinner while the execution runs, then a mark saying how it ended."""

    def render(self, task: Task) -> RenderableType:
        mark = task.fields.get("mark")
        return Text(mark) if mark else super().render(task)


@dataclass
class TurnView:
    """What one agent turn shows: its streamed text and its child executions' progress."""

    console: Console
    turn_id: str
    text: Text = field(default_factory=Text)
    progress: Progress = field(init=False)
    tasks: dict[str, TaskID] = field(default_factory=dict)
    live: Live = field(init=False)

    def __post_init__(self) -> None:
        self.progress = Progress(
            StatusColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            console=self.console,
        )
        self.live = Live(self, console=self.console, refresh_per_second=12, vertical_overflow="visible")
        self.live.start()

    def stop(self) -> None:
        self.live.refresh()
        self.live.stop()
        if not self.console.is_terminal:
            self.console.line()  # a terminal gets it from Live; a pipe would run on into the prompt

    def __rich__(self) -> RenderableType:
        parts: list[RenderableType] = [Text("agent> ", style="bold cyan") + self.text]
        if self.tasks:
            parts.append(self.progress)
        return Group(*parts)


class ChatView:
    """Turns session events into terminal output."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.turns: dict[str, TurnView] = {}
        self.intents: dict[str, str] = {}  # execution id -> intent name
        self.finished: dict[str, asyncio.Event] = {}

    def turn(self, turn_id: str) -> TurnView:
        view = self.turns.get(turn_id)
        if view is None:
            view = self.turns[turn_id] = TurnView(self.console, turn_id)
        return view

    def active_turn(self) -> TurnView | None:
        return next(reversed(self.turns.values()), None)

    def finished_event(self, execution_id: str) -> asyncio.Event:
        return self.finished.setdefault(execution_id, asyncio.Event())

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        data = event.get("data") or {}
        execution_id = event.get("execution_id") or ""
        if kind == "error":
            self.console.print(f"[red]error {event.get('code')}: {event.get('message')}[/]")
        elif kind == "agent.delta":
            view = self.turn(str(data.get("turn_id") or execution_id))
            view.text.append(str(data.get("text", "")))
            view.live.refresh()
        elif kind == "agent.message":
            view = self.turn(str(data.get("turn_id") or execution_id))
            view.text = Text(str(data.get("text", "")))  # the whole reply is authoritative
            view.live.refresh()
        elif kind == "execution.accepted":
            intent = str(data.get("intent", "?"))
            self.intents[execution_id] = intent
            if intent == TURN_INTENT:
                self.turn(execution_id)
            elif (view := self.active_turn()) is not None:
                view.tasks[execution_id] = view.progress.add_task(intent, total=1.0)
            else:
                self.console.print(f"[dim]• {intent} started ({execution_id})[/]")
        elif kind == "execution.progress":
            self._update_task(execution_id, data.get("fraction"), data.get("message"))
        elif kind in _TERMINAL:
            self._finish(execution_id, _TERMINAL[kind], data)

    def _task(self, execution_id: str) -> tuple[TurnView, TaskID] | None:
        for view in self.turns.values():
            if execution_id in view.tasks:
                return view, view.tasks[execution_id]
        return None

    def _update_task(self, execution_id: str, fraction: Any, message: Any) -> None:
        found = self._task(execution_id)
        if found is None:
            return
        view, task = found
        name = self.intents.get(execution_id, "?")
        description = f"{name}: {message}" if message else name
        view.progress.update(task, completed=float(fraction or 0.0), description=description)
        view.live.refresh()

    def _finish(self, execution_id: str, status: str, data: dict[str, Any]) -> None:
        name = self.intents.get(execution_id, "?")
        if execution_id in self.turns:
            view = self.turns.pop(execution_id)
            if status != "completed":
                detail = f" ({data.get('code')}: {data.get('message')})" if status == "failed" else ""
                view.text.append(f"\n[turn {status}{detail}]", style="red")
            view.stop()
        elif (found := self._task(execution_id)) is not None:
            view, task = found
            style, mark = {"completed": ("green", "✓"), "failed": ("red", "✗"), "cancelled": ("yellow", "⊘")}[status]
            view.progress.update(
                task,
                completed=1.0 if status == "completed" else None,
                description=f"[{style}]{name} {status}[/]",
                mark=mark,
            )
            view.live.refresh()
        else:
            self.console.print(f"[dim]• {name} {status} ({execution_id})[/]")
        if name == TURN_INTENT or execution_id in self.finished:
            self.finished_event(execution_id).set()

    def close(self) -> None:
        for view in self.turns.values():
            view.stop()
        self.turns.clear()


def _read_line(prompt: str) -> asyncio.Future[str | None]:
    """One line of input, read in a daemon thread (so Ctrl-C or /quit never waits on it)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str | None] = loop.create_future()

    def read() -> None:
        try:
            line: str | None = input(prompt)
        except (EOFError, OSError):
            line = None
        loop.call_soon_threadsafe(lambda: future.done() or future.set_result(line))

    threading.Thread(target=read, name="chat-input", daemon=True).start()
    return future


async def run_chat(
    console: Console, urls: list[str], email: str | None, password: str | None, session_token: str | None
) -> None:
    async with AsyncClient(urls) as client:
        if session_token:
            client.session_token = session_token
        else:
            assert email is not None and password is not None
            await client.login(email, password)
            await client.create_session(metadata={"client": "intentd chat"})
        sock = await client.connect_agent(after_seq=None)
        console.print(
            f"Connected to {client.current_url} (session {sock.session_id}). "
            "Type /help for what the agent can run, /quit to leave."
        )
        try:
            await _converse(console, sock)
        finally:
            await sock.close()


async def _converse(console: Console, sock: AgentSocket) -> None:
    view = ChatView(console)
    ended = asyncio.Event()
    current_turn: list[str] = []  # the execution the prompt waits for, if any
    cancelling: set[asyncio.Future[None]] = set()

    async def pump() -> None:
        try:
            async for event in sock:
                view.handle(event)
        except IntentdError as exc:
            console.print(f"[red]The connection ended: {exc}[/]")
        finally:
            ended.set()

    def interrupt() -> None:
        if not current_turn:
            ended.set()
            return
        console.print("[yellow]Cancelling…[/]")
        # the runtime cancels the intents the turn started along with it
        task = asyncio.ensure_future(_quiet(sock.cancel(current_turn[0])))
        cancelling.add(task)
        task.add_done_callback(cancelling.discard)

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, interrupt)
    pumping = asyncio.create_task(pump())
    ending = asyncio.create_task(ended.wait())
    try:
        while not ended.is_set():
            line = _read_line("you> ")
            await asyncio.wait({line, ending}, return_when=asyncio.FIRST_COMPLETED)
            if not line.done() or line.result() is None:
                break
            text = line.result().strip()
            if text in QUIT_COMMANDS:
                break
            if not text:
                continue
            try:
                ack = await sock.send_message(text)
            except IntentdError as exc:
                console.print(f"[red]{exc}[/]")
                continue
            current_turn[:] = [ack["execution_id"]]
            done = asyncio.ensure_future(view.finished_event(ack["execution_id"]).wait())
            await asyncio.wait({done, ending}, return_when=asyncio.FIRST_COMPLETED)
            done.cancel()
            view.finished.pop(ack["execution_id"], None)
            current_turn.clear()
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        ending.cancel()
        pumping.cancel()
        view.close()


async def _quiet(request: Any) -> None:
    with contextlib.suppress(IntentdError):
        await request


def chat(
    url: str = typer.Option(
        "http://127.0.0.1:8000",
        "--url",
        envvar="INTENTD_URL",
        help="Base URL of intentd; several, comma-separated, to fail over.",
    ),
    email: str | None = typer.Option(None, "--email", help="Log in as this user (prompted when omitted)."),
    password: str | None = typer.Option(None, "--password", help="Prompted (hidden) when omitted."),
    session_token: str | None = typer.Option(
        None, "--session-token", envvar="INTENTD_SESSION_TOKEN", help="Join an existing session instead of logging in."
    ),
) -> None:
    """Chat with the agent of a new session (or of --session-token's)."""
    console = Console()
    if not session_token:
        email = email or typer.prompt("Email")
        password = password or typer.prompt("Password", hide_input=True)
    urls = [part.strip() for part in url.split(",") if part.strip()]
    try:
        asyncio.run(run_chat(console, urls, email, password, session_token))
    except IntentdError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
