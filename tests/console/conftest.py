"""Fixtures for the browser tests of the web console: Playwright (sync API) driving
Debian's chromium against a real ``intentd up`` subprocess."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import harness
import pytest
from console_helpers import DESKTOP, Tab
from harness import UpServer
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Playwright,
    expect,
    sync_playwright,
)

expect.set_options(timeout=10_000)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker("browser")


# Module scope, not session: while the sync API is open its event loop runs in
# this thread, and every async test collected after it would fail to start.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(**harness.chromium_launch_options())
    yield browser
    browser.close()


@pytest.fixture
def server(up_server: Callable[..., UpServer]) -> UpServer:
    return up_server()


@pytest.fixture
def open_tab(browser: Browser) -> Iterator[Callable[..., Tab]]:
    """Factory: a page in a fresh browser context (its own sessionStorage) at ``viewport``.

    Uncaught exceptions in the page fail the test in every case.
    """
    contexts: list[BrowserContext] = []
    tabs: list[Tab] = []

    def make(viewport: dict[str, int] | None = None) -> Tab:
        context = browser.new_context(viewport=viewport or DESKTOP)
        contexts.append(context)
        page = context.new_page()
        tab = Tab(page)
        page.on("console", tab.on_console)
        page.on("pageerror", lambda exc: tab.page_errors.append(str(exc)))
        tabs.append(tab)
        return tab

    yield make
    errors = [error for tab in tabs for error in tab.page_errors]
    for context in contexts:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"
