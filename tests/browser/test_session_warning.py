"""The idle-session warning in a real browser: it shows a minute before the end, "Stay signed in"
works from the keyboard, and an unattended page ends on the login page with the reason.

Both clocks are moved, none waited for: the server's (radiology.session_limits.now) and the
page's timers (Playwright's clock).
"""

import time

import pytest
from playwright.sync_api import expect

from radiology import session_limits

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MINUTE = 60


class Clock:
    def __init__(self):
        self.at = time.time()

    def __call__(self):
        return self.at


@pytest.fixture
def server_clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(session_limits, "now", clock)
    return clock


def settled(page, action):
    """Do `action` and let the page's script handle the session answer it triggers (it then sets its timer)."""
    with page.expect_response(lambda response: "/session/" in response.url):
        action()
    page.wait_for_timeout(300)


def test_idle_warning_then_sign_out(settings, open_browser_as, doctor, server_clock, screenshots):
    settings.SESSION_IDLE_MINUTES = 15
    page = open_browser_as(doctor)
    page.clock.install()
    settled(page, page.reload)  # the page's script now runs on the controlled timers
    warning = page.locator("#session-warning")
    expect(warning).to_be_hidden()

    server_clock.at += 14 * MINUTE + 5
    page.clock.run_for((14 * MINUTE + 5) * 1000)  # milliseconds
    expect(warning).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("signed out at")
    screenshots.take(page, "warning")

    page.get_by_role("button", name="Stay signed in").focus()
    settled(page, lambda: page.keyboard.press("Enter"))
    expect(warning).to_be_hidden()

    server_clock.at += 15 * MINUTE + 5  # nobody touches the page again
    page.clock.run_for((15 * MINUTE + 5) * 1000)
    expect(page.get_by_label("Username")).to_be_visible()
    expect(page.get_by_text("signed out after 15 minutes without activity")).to_be_visible()
    screenshots.take(page, "signed-out")
