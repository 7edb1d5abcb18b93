"""Sign-in messages, admin pages acting on a second browser's user (create, revoke,
disable), and the 4401 path back to sign-in."""

from __future__ import annotations

import time

from console_helpers import SLOW_MS, new_session, screenshot, send, sign_in
from playwright.sync_api import expect

USER_EMAIL = "alice@example.com"
USER_PASSWORD = "alice-password-1234"


def create_user_from_admin_page(page, server) -> None:
    page.goto(f"{server.url}/admin/users")
    form = page.get_by_role("form", name="Create a user")
    form.get_by_label("Email").fill(USER_EMAIL)
    form.get_by_label("Password").fill(USER_PASSWORD)
    form.get_by_label("Role").select_option("user")
    form.get_by_role("button", name="Create user").click()
    expect(page.locator("main").get_by_role("status")).to_have_text(f"Created {USER_EMAIL}.")
    expect(page.get_by_role("cell", name=USER_EMAIL, exact=True)).to_be_visible()


def test_admin_revoking_the_session_sends_the_other_browser_back_to_sign_in(server, open_tab):
    admin = open_tab().page
    sign_in(admin, server)
    create_user_from_admin_page(admin, server)

    user = open_tab().page
    sign_in(user, server, email=USER_EMAIL, password=USER_PASSWORD)
    expect(user.get_by_role("link", name="Users")).to_have_count(0)  # no admin pages for role user
    session_id = new_session(user)
    send(user, "/help")
    expect(user.locator(".bubble.agent").first).to_contain_text("wait", timeout=SLOW_MS)

    admin.goto(f"{server.url}/admin/sessions")
    admin.get_by_label("User").select_option(label=USER_EMAIL)
    admin.get_by_role("button", name="Apply").click()
    revoke = admin.get_by_role("button", name=f"Revoke session {session_id}")
    admin.once("dialog", lambda dialog: dialog.accept())
    screenshot(admin, "16-admin-sessions-before-revoke")
    revoke.click()
    started = time.monotonic()
    expect(user.get_by_role("heading", name="Sign in to intentd")).to_be_visible(timeout=2_000)
    expect(user.locator("#signin-notice")).to_contain_text(
        "signed out", timeout=max(100, 2_000 - (time.monotonic() - started) * 1000)
    )
    screenshot(user, "17-signin-after-revoke")
    expect(admin.locator("main").get_by_role("status")).to_contain_text("revoked")
    tokens = user.evaluate("Object.keys(sessionStorage).filter(k => k.startsWith('intentd.'))")
    assert tokens == [], tokens

    # The admin disables the account: signing in now fails with a clear message.
    admin.goto(f"{server.url}/admin/users")
    admin.get_by_label(f"Role of {USER_EMAIL}").select_option("admin")
    expect(admin.locator("main").get_by_role("status")).to_have_text(f"{USER_EMAIL} is now admin.")
    expect(admin.get_by_label(f"Role of {USER_EMAIL}")).to_have_value("admin")
    admin.get_by_role("button", name=f"Disable {USER_EMAIL}").click()
    expect(admin.locator("main").get_by_role("status")).to_have_text(f"{USER_EMAIL} is disabled.")
    expect(admin.get_by_role("row", name=USER_EMAIL)).to_contain_text("disabled")
    user.get_by_label("Email").fill(USER_EMAIL)
    user.get_by_label("Password").fill(USER_PASSWORD)
    user.get_by_role("button", name="Sign in").click()
    expect(user.get_by_role("alert")).not_to_be_empty()
    expect(user.get_by_role("heading", name="Sign in to intentd")).to_be_visible()

    admin.goto(f"{server.url}/admin/audit")
    expect(admin.locator("table")).to_contain_text("session", timeout=SLOW_MS)


def test_sign_in_messages_wrong_password_locked_out_expired_and_sign_out(server, open_tab):
    page = open_tab().page
    page.goto(f"{server.url}/")
    expect(page).to_have_url(f"{server.url}/signin")
    alert = page.get_by_role("alert")
    page.get_by_role("button", name="Sign in").click()
    expect(alert).to_have_text("Enter your email and password.")

    page.get_by_label("Email").fill(server.admin_email)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(alert).to_have_text("Wrong email or password.")

    for _ in range(10):
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("button", name="Sign in")).to_be_enabled()
        if "locked" in alert.inner_text():
            break
    expect(alert).to_contain_text("Too many failed attempts: signing in is temporarily locked.")
    expect(alert).to_contain_text("Try again in")
    screenshot(page, "18-signin-locked")


def test_expired_sign_in_returns_to_sign_in_and_a_stale_access_token_is_refreshed(server, open_tab):
    page = open_tab().page
    sign_in(page, server)

    # A stale access token with a valid refresh token: refreshed silently.
    page.evaluate("sessionStorage.setItem('intentd.access_token', 'stale')")
    page.reload()
    expect(page.get_by_role("heading", name="Chat", level=1)).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('intentd.access_token')") != "stale"

    # Both tokens no longer valid: back to sign-in, saying why.
    page.evaluate(
        "sessionStorage.setItem('intentd.access_token', 'stale'); sessionStorage.setItem('intentd.refresh_token', 'stale')"
    )
    page.reload()
    expect(page.get_by_role("heading", name="Sign in to intentd")).to_be_visible()
    expect(page.locator("#signin-notice")).to_have_text("Your sign-in has expired. Please sign in again.")

    sign_in(page, server)
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#signin-notice")).to_have_text("You signed out.")
    assert page.evaluate("Object.keys(sessionStorage).filter(k => k.startsWith('intentd.'))") == []
    page.goto(f"{server.url}/admin/users")
    expect(page).to_have_url(f"{server.url}/signin")
