"""Execution cards: live progress to 100 %, cancel from the card, and surviving a server
crash (reconnect, resume by seq, every event exactly once)."""

from __future__ import annotations

from console_helpers import (
    SLOW_MS,
    api_login,
    event_log_seqs,
    new_session,
    screenshot,
    send,
    sign_in,
    wait_until,
)
from playwright.sync_api import expect


def test_wait_progress_reaches_100_and_a_long_wait_is_cancelled_from_its_card(server, open_tab):
    page = open_tab().page
    sign_in(page, server)
    new_session(page)

    send(page, "/wait seconds=5")
    card = page.locator('.card[data-intent="wait"]').first
    expect(card).to_have_attribute("data-status", "running", timeout=SLOW_MS)
    seen: list[int] = []

    def finished() -> bool:
        seen.append(int(card.locator("progress").get_attribute("value")))
        return card.get_attribute("data-status") == "completed"

    wait_until(finished, what="wait 5 s completed")
    intermediate = sorted({v for v in seen if 0 < v < 100})
    assert len(intermediate) >= 2, f"the bar did not move: {seen}"
    assert seen == sorted(seen), f"the bar went backwards: {seen}"
    expect(card.locator("progress")).to_have_attribute("value", "100")
    expect(card.locator(".percent")).to_have_text("100%")
    expect(card.locator(".status")).to_have_text("completed")
    expect(card.locator(".result-view")).to_contain_text("waited")
    expect(card.locator(".duration")).to_contain_text(" s")
    expect(card.get_by_role("button", name="Cancel wait")).to_be_hidden()

    send(page, "/wait seconds=30")
    long_card = page.locator('.card[data-intent="wait"]').nth(1)
    expect(long_card).to_have_attribute("data-status", "running", timeout=SLOW_MS)
    expect(long_card.locator(".percent")).not_to_have_text("0%", timeout=SLOW_MS)
    long_card.get_by_role("button", name="Cancel wait").click()
    expect(long_card).to_have_attribute("data-status", "cancelled", timeout=SLOW_MS)
    expect(long_card.locator(".status")).to_have_text("cancelled")
    expect(long_card.locator(".outcome")).to_have_text("Cancelled.")
    assert int(long_card.locator("progress").get_attribute("value")) < 100
    screenshot(page, "13-chat-wait-cancelled")

    # Admin: find it by status and intent, retry it, cancel the retry from its detail page.
    page.goto(f"{server.url}/admin/executions")
    page.get_by_label("Status").select_option("cancelled")
    page.get_by_label("Intent").fill("wait")
    page.get_by_label("User").select_option(label=server.admin_email)
    page.get_by_role("button", name="Apply").click()
    rows = page.locator("main table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("cancelled")
    rows.first.get_by_role("link").click()
    expect(page.locator(".timeline li").last).to_contain_text("execution.cancelled")
    page.get_by_role("button", name="Retry execution").click()
    expect(page.locator("dl.result")).to_contain_text("Retry of")
    expect(page.locator("dl.result dd a").last).to_be_visible()
    expect(page.locator("dl.result .status")).to_have_text("running", timeout=SLOW_MS)
    page.get_by_role("button", name="Cancel execution").click()
    expect(page.locator("dl.result .status")).to_have_text("cancelled", timeout=SLOW_MS)
    expect(page.locator(".timeline li").last).to_contain_text("execution.cancelled")


def test_server_killed_mid_wait_reconnects_and_the_transcript_has_every_event_once(server, open_tab):
    page = open_tab().page
    sign_in(page, server)
    session_id = new_session(page)
    send(page, "/wait seconds=6")
    card = page.locator('.card[data-intent="wait"]')
    expect(card.locator(".percent")).not_to_have_text("0%", timeout=SLOW_MS)

    server.kill9()
    connection = page.locator("#connection")
    expect(connection).to_have_attribute("data-state", "reconnecting")
    expect(connection).to_contain_text("Reconnecting")
    screenshot(page, "14-chat-reconnecting")
    server.restart()

    expect(connection).to_have_text("Connected", timeout=SLOW_MS)
    expect(card).to_have_attribute("data-status", "completed", timeout=60_000)
    expect(card.locator("progress")).to_have_attribute("value", "100")

    with api_login(server) as client:
        # Wait until the page caught up with the session's log (the turn may still be talking).
        last: dict[str, object] = {}

        def caught_up() -> bool:
            items = client.get(f"/api/sessions/{session_id}/events", params={"after_seq": 0, "limit": 500}).json()[
                "items"
            ]
            expected = [event["seq"] for event in items]
            finished = any(
                event["type"] == "execution.completed" and event["data"].get("result", {}).get("waited")
                for event in items
            )
            last.update(server=[(e["seq"], e["type"]) for e in items], page=event_log_seqs(page))
            return finished and event_log_seqs(page) == expected

        try:
            wait_until(caught_up, timeout=30, what="the page shows every event of the session, once")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {last}") from None
    shown = event_log_seqs(page)
    assert shown == list(range(1, len(shown) + 1)), shown
    # Each progress step of the card once, in order.
    timeline = card.locator(".timeline li").evaluate_all("els => els.map(e => Number(e.dataset.seq))")
    assert timeline == sorted(set(timeline)), timeline
    assert page.locator(".bubble.user", has_text="/wait seconds=6").count() == 1
    screenshot(page, "15-chat-after-restart")
