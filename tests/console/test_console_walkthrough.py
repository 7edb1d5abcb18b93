"""Sign in, open a session, ask for /help, run text.stats in plain language; visit every
main page (screenshots saved as artifacts) without a single console error."""

from __future__ import annotations

import json
import re

from console_helpers import PHONE, SLOW_MS, new_session, screenshot, send, sign_in
from playwright.sync_api import expect

TEXT = "The quick brown fox jumps over the lazy dog. The dog sleeps."


def test_help_then_plain_language_text_stats(server, open_tab):
    tab = open_tab()
    page = tab.page
    urls: list[str] = []
    first_frames: list[dict] = []
    page.on("request", lambda request: urls.append(request.url))

    def on_websocket(ws) -> None:
        urls.append(ws.url)
        ws.on("framesent", lambda payload: first_frames.append(json.loads(payload)) if not first_frames else None)

    page.on("websocket", on_websocket)
    page.goto(server.url)
    expect(page.get_by_role("heading", name="Sign in to intentd")).to_be_visible()
    screenshot(page, "01-signin")
    sign_in(page, server)
    new_session(page)

    send(page, "/help")
    reply = page.locator(".bubble.agent").first
    expect(reply).to_contain_text("text.stats", timeout=SLOW_MS)
    expect(reply).to_contain_text("wait")
    expect(page.locator(".bubble.user").first).to_have_text("/help")

    send(page, f"count the words in: {TEXT}")
    card = page.locator('.card[data-intent="text.stats"]')
    expect(card).to_have_attribute("data-status", "completed", timeout=SLOW_MS)
    result = card.locator(".result-view")
    # words 12, sentences 2, "dog" twice among the keywords
    expect(result.locator("dt", has_text="words").first).to_be_visible()
    expect(result.locator("dl > dd").first).to_have_text("12")
    expect(result).to_contain_text("sentences")
    keyword_row = result.locator("table tr", has_text="dog")
    expect(keyword_row.locator("td").nth(1)).to_have_text("2")
    expect(card.locator("progress")).to_have_attribute("value", "100")
    screenshot(page, "02-chat")

    # Through the navigation, as a person would (link name, heading, screenshot).
    pages = [
        ("Intents", "/intents", "Intents", "03-intents"),
        ("Users", "/admin/users", "Users", "05-admin-users"),
        ("Sessions", "/admin/sessions", "Sessions", "06-admin-sessions"),
        ("Executions", "/admin/executions", "Executions", "07-admin-executions"),
        ("Routes", "/admin/routes", "Routes", "09-admin-routes"),
        ("Stats", "/admin/stats", "Live stats", "10-admin-stats"),
        ("Audit", "/admin/audit", "Audit log", "11-admin-audit"),
    ]
    nav = page.get_by_role("navigation", name="Main")
    for link, path, heading, shot in pages:
        nav.get_by_role("link", name=link, exact=True).click()
        expect(page.get_by_role("heading", name=heading, level=1)).to_be_visible()
        expect(page).to_have_url(server.url + path)
        screenshot(page, shot)
    expect(page.locator("#connection")).to_have_text("Connected")  # the socket lives on across pages

    page.goto(f"{server.url}/intents/wait")
    expect(page.get_by_label("seconds (required)")).to_be_visible()
    screenshot(page, "04-intent-form")

    page.goto(f"{server.url}/admin/executions")
    page.get_by_label("Status").select_option("completed")
    page.get_by_role("button", name="Apply").click()
    page.locator("table a[href^='/admin/executions/']").first.click()
    expect(page.get_by_role("heading", name="Event timeline")).to_be_visible()
    expect(page.locator(".timeline li").first).to_contain_text("execution.accepted")
    screenshot(page, "08-admin-execution")

    page.goto(f"{server.url}/admin/stats")
    expect(page.locator(".chart")).to_have_attribute("data-points", "2", timeout=SLOW_MS)

    assert tab.console_errors == [], tab.console_errors
    # Tokens travel in headers and the socket's first message, never in a URL.
    stored = page.evaluate("JSON.stringify(Object.values(sessionStorage))")
    secrets = [t for t in re.findall(r"[A-Za-z0-9_\-.]{20,}", stored)]
    assert secrets, "no token in sessionStorage?"
    leaked = [u for u in urls if "token" in u.lower() or any(secret in u for secret in secrets)]
    assert leaked == [], leaked
    assert first_frames and first_frames[0]["type"] == "auth", first_frames


def test_usable_on_a_375px_screen(server, open_tab):
    page = open_tab(PHONE).page
    sign_in(page, server)
    new_session(page)
    send(page, "/help")
    expect(page.locator(".bubble.agent").first).to_contain_text("text.stats", timeout=SLOW_MS)
    # Sessions: a second one starts empty; switching back replays the first; revoke the second.
    first = page.locator(".conversation > p.hint").inner_text()
    second_id = new_session(page)
    expect(page.locator(".transcript > li")).to_have_count(0)
    sessions = page.get_by_role("list", name="Your sessions")
    expect(sessions.get_by_role("listitem")).to_have_count(2)
    first_id = first.removeprefix("Session ")
    sessions.get_by_role("button", name=f"Open session {first_id[:8]}").click()
    expect(page.locator("#connection")).to_have_text("Connected", timeout=SLOW_MS)
    expect(page.locator(".bubble.agent").first).to_contain_text("text.stats", timeout=SLOW_MS)
    expect(page.locator(".bubble.user")).to_have_count(1)
    page.once("dialog", lambda dialog: dialog.accept())
    sessions.get_by_role("button", name=f"Revoke session {second_id[:8]}").click()
    expect(page.locator(f'[data-session-id="{second_id}"]')).to_contain_text("revoked or expired")
    expect(page.locator("#connection")).to_have_text("Connected")  # the open session is untouched

    for path in ("/", "/intents/text.stats", "/admin/executions", "/admin/stats"):
        page.goto(server.url + path)
        expect(page.locator("main h1")).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 375px"
    screenshot(page, "12-phone-stats")

    # Keyboard only: focus lands on the page heading, Tab reaches the controls, focus is visible.
    page.goto(server.url + "/")
    expect(page.get_by_role("heading", name="Chat", level=1)).to_be_focused()
    new_button = page.get_by_role("button", name="New session", exact=True)
    for _ in range(30):
        page.keyboard.press("Tab")
        if new_button.evaluate("el => el === document.activeElement"):
            break
    expect(new_button).to_be_focused()
    assert new_button.evaluate("el => getComputedStyle(el).outlineStyle") != "none"
    page.keyboard.press("Enter")
    expect(page.locator("#connection")).to_have_text("Connected", timeout=SLOW_MS)
