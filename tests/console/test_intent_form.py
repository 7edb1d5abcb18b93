"""Forms generated from intent JSON Schemas: checked before sending; the server's
invalid_params errors shown on the field they concern."""

from __future__ import annotations

import json

from console_helpers import SLOW_MS, screenshot, sign_in
from playwright.sync_api import Route, expect


def test_form_rejects_invalid_input_before_sending_and_shows_server_errors(server, open_tab):
    page = open_tab().page
    sign_in(page, server)
    submits: list[dict] = []
    page.on("request", lambda r: submits.append(r.post_data_json) if r.url.endswith("/api/intent/submit") else None)

    page.goto(f"{server.url}/intents/text.stats")
    text = page.get_by_label("text (required)")
    top = page.get_by_label("top")
    expect(top).to_have_value("5")  # the schema's default
    page.get_by_role("button", name="Run text.stats").click()
    expect(page.locator(f"#{text.get_attribute('id')}-error")).to_have_text("This field is required.")
    expect(text).to_have_attribute("aria-invalid", "true")
    expect(text).to_be_focused()
    top.fill("0")
    text.fill("Some words here.")
    page.get_by_role("button", name="Run text.stats").click()
    expect(page.locator(f"#{top.get_attribute('id')}-error")).to_have_text("Must be at least 1.")
    top.fill("2.5")
    page.get_by_role("button", name="Run text.stats").click()
    expect(page.locator(f"#{top.get_attribute('id')}-error")).to_have_text("Enter a whole number.")
    screenshot(page, "19-intent-form-errors")
    assert submits == [], "invalid input was sent"

    top.fill("2")
    page.get_by_role("button", name="Run text.stats").click()
    card = page.locator('.submitted .card[data-intent="text.stats"]')
    expect(card).to_have_attribute("data-status", "completed", timeout=SLOW_MS)
    expect(card.locator(".result-view")).to_contain_text("words")
    expect(page.locator(f"#{top.get_attribute('id')}-error")).to_be_empty()
    assert submits == [{"intent": "text.stats", "params": {"text": "Some words here.", "top": 2}}]

    page.goto(f"{server.url}/intents/wait")
    seconds = page.get_by_label("seconds (required)")
    seconds.fill("5000")
    page.get_by_role("button", name="Run wait").click()
    expect(page.locator(f"#{seconds.get_attribute('id')}-error")).to_have_text("Must be at most 3600.")
    assert len(submits) == 1


def test_server_invalid_params_are_shown_on_the_field(server, open_tab):
    """A schema the browser cannot fully check (here: its maximum removed on the way) lets
    bad input through; the server's invalid_params answer lands on the right field."""
    page = open_tab().page
    sign_in(page, server)

    def loosen_wait_schema(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        for item in body["items"]:
            if item["name"] == "wait":
                item["params_schema"]["properties"]["seconds"].pop("maximum", None)
        route.fulfill(response=response, body=json.dumps(body))

    page.route("**/api/intent/types", loosen_wait_schema)
    page.goto(f"{server.url}/intents/wait")
    seconds = page.get_by_label("seconds (required)")
    seconds.fill("99999")
    with page.expect_response("**/api/intent/submit") as answer:
        page.get_by_role("button", name="Run wait").click()
    assert answer.value.status == 422
    assert answer.value.json()["code"] == "invalid_params"
    error = page.locator(f"#{seconds.get_attribute('id')}-error")
    expect(error).to_contain_text("3600")
    expect(seconds).to_have_attribute("aria-invalid", "true")
    expect(page.locator("main form").get_by_role("alert")).to_contain_text("The server rejected the parameters")
    screenshot(page, "20-intent-form-server-errors")
