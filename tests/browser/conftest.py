"""Browser fixtures: Debian's Chromium driven by Playwright, a page logged in per role through the
real login form, screenshots of each step, and the model the flows predict with.

One Chromium serves all the browser tests; each role gets a fresh browser context (its own cookies).
The server is pytest-django's `live_server` (so every test here commits its data: transactional_db).
"""

import os
import re
from pathlib import Path

import pytest

from tests.conftest import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking switches Chromium keeps dialling Google services, and on
# machines with no network those connections are refused in bulk and slow every page down.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAPTOP = {"width": 1366, "height": 900}
PROJECT_ROOT = Path(__file__).resolve().parents[2]
STEP_TIMEOUT_MS = 15_000


def screenshots_root():
    return Path(os.environ.get("BROWSER_SCREENSHOTS_DIR") or PROJECT_ROOT / "test-artifacts" / "screenshots")


@pytest.fixture(scope="package")
def chromium():
    """The one browser of these tests; skips them where Debian's Chromium is absent.

    Package scope: Playwright's loop and the setting below must not outlive the browser tests."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (apt-get install chromium) to run browser tests.")
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API keeps an asyncio loop running in this thread, and Django then refuses
    # ORM calls from the test ("async context") although they are plain synchronous code here.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield browser
            browser.close()


class Screenshots:
    """Numbered full-page screenshots of one test's steps, in a folder named after the test."""

    def __init__(self, folder):
        self.folder = folder
        self.count = 0

    def take(self, page, step):
        self.count += 1
        path = self.folder / f"{self.count:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def screenshots(request):
    folder = screenshots_root() / re.sub(r"[^\w.-]+", "_", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):  # a rerun replaces the previous run's pictures
        old.unlink()
    return Screenshots(folder)


@pytest.fixture
def open_browser_as(chromium, live_server):
    """open_browser_as(user, viewport=LAPTOP) -> a page of a fresh browser context, logged in as
    user through the login form, on the user's start page."""
    contexts = []

    def open_as(user, viewport=LAPTOP):
        context = chromium.new_context(base_url=live_server.url, viewport=viewport)
        context.set_default_timeout(STEP_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        log_in(page, user.username)
        return page

    yield open_as
    for context in contexts:
        context.close()


def log_in(page, username, password=PASSWORD):
    page.goto("/")  # not logged in: sent to the login form, which brings the user back here
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Log out").wait_for()


@pytest.fixture
def browser_model_version(db, request):
    """The tiny test model, registered and active. The flows upload generated images, which the
    bundled model rightly flags as outside its intended use (they are not X-rays) and would hide;
    the tiny model was trained on such images and declares no population."""
    from classifier.registry import register_model

    return register_model(request.getfixturevalue("tiny_artifact"), activate=True)
