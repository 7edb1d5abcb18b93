"""Helpers for the console's browser tests: constants, page actions and checks."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from harness import UpServer
from playwright.sync_api import ConsoleMessage, Page, expect

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}
# Generous deadline for UI state that depends on the server (executions, reconnects).
SLOW_MS = 30_000


@dataclass
class Tab:
    """A page plus what the browser reported while the test used it."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} @ {message.location.get('url', '')}")


def sign_in(page: Page, server: UpServer, *, email: str | None = None, password: str | None = None) -> None:
    page.goto(f"{server.url}/signin")
    page.get_by_label("Email").fill(email or server.admin_email)
    page.get_by_label("Password").fill(password or server.admin_password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Chat", level=1)).to_be_visible()


def new_session(page: Page) -> str:
    """Create a session from the chat page, wait until its socket is connected; returns its id."""
    hint = page.locator(".conversation > p.hint")
    before = hint.inner_text() if hint.count() else ""
    page.get_by_role("button", name="New session", exact=True).click()
    expect(hint).not_to_have_text(before or "-", timeout=SLOW_MS)
    expect(page.locator("#connection")).to_have_text("Connected", timeout=SLOW_MS)
    match = re.search(r"Session (\S+)", hint.inner_text())
    assert match, hint.inner_text()
    return match.group(1)


def send(page: Page, text: str) -> None:
    box = page.get_by_label("Message to the agent")
    box.fill(text)
    box.press("Enter")


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def wait_until(predicate: Callable[[], object], *, timeout: float = SLOW_MS / 1000, what: str = "condition") -> object:
    """Poll ``predicate`` every 0.2 s until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.2)


@contextmanager
def api_login(server: UpServer, email: str | None = None, password: str | None = None) -> Iterator[httpx.Client]:
    """An HTTP client signed in over the public API (for checks the page cannot show)."""
    with httpx.Client(base_url=server.url, timeout=10.0) as client:
        response = client.post(
            "/api/auth/login",
            json={"email": email or server.admin_email, "password": password or server.admin_password},
        )
        response.raise_for_status()
        client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        yield client


def event_log_seqs(page: Page) -> list[int]:
    """The seq of every event the page's event log shows, in order."""
    return [int(s) for s in page.locator(".event-log li[data-seq]").evaluate_all("els => els.map(e => e.dataset.seq)")]
