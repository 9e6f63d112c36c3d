"""Under the Content-Security-Policy the pages still work in a real browser: no violation is
reported on the review page (heatmap, opacity slider), the API documentation or Django's admin."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.factories import PredictionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def collect_violations(page):
    violations = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    return violations


def test_review_page_and_api_docs_run_under_the_policy(open_browser_as, doctor, screenshots):
    scan = PredictionFactory().scan
    page = open_browser_as(doctor)
    violations = collect_violations(page)

    page.goto(reverse("review", args=[scan.pk]))
    heatmap = page.locator("#heatmap")
    expect(heatmap).to_have_css("opacity", "0.45")  # from the stylesheet, not a style attribute
    page.get_by_label("Opacity").fill("80")
    expect(heatmap).to_have_css("opacity", "0.8")  # the page's script may still set styles
    screenshots.take(page, "review")

    page.goto(reverse("api-docs"))
    expect(page.get_by_role("heading", name="PneumoScan API")).to_be_visible()
    screenshots.take(page, "api-docs")
    assert violations == []


def test_django_admin_runs_under_the_policy(open_browser_as, admin_user, screenshots):
    page = open_browser_as(admin_user)
    violations = collect_violations(page)
    page.goto(reverse("admin:auth_user_changelist"))
    expect(page.get_by_role("heading", name="Select user to change")).to_be_visible()
    screenshots.take(page, "users")
    assert violations == []
