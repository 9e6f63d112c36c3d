"""A scan outside intended use in a real browser: the reasons first, the output hidden, shown only
through the keyboard-reachable form button (no inline script, no policy violation), then decided."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from radiology.models import AuditEvent, Review
from tests.browser.test_content_security_policy import collect_violations
from tests.factories import PredictionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_doctor_reads_a_flagged_scan_by_keyboard(open_browser_as, doctor, screenshots):
    scan = PredictionFactory(
        probability=0.8124, intended_use={"within": False, "reasons": ["image"], "score": 30.0}
    ).scan
    page = open_browser_as(doctor)
    violations = collect_violations(page)
    page.goto(reverse("review", args=[scan.pk]))
    expect(page.get_by_role("alert").filter(has_text="Outside intended use")).to_be_visible()
    expect(page.locator("#probability")).to_have_count(0)
    expect(page.locator("#heatmap")).to_have_count(0)
    screenshots.take(page, "hidden")

    show = page.get_by_role("button", name="Show the model's output anyway")
    show.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#probability")).to_have_text("0.812")
    expect(page.locator("#heatmap")).to_be_visible()
    assert AuditEvent.objects.filter(action="scan.model_output_shown", actor=doctor).count() == 1
    screenshots.take(page, "shown")

    page.get_by_role("button", name="Override").click()
    expect(page).not_to_have_url(reverse("review", args=[scan.pk]))
    review = Review.objects.get(scan=scan)
    assert review.final_label == "NORMAL" and review.note == ""
    assert violations == []
