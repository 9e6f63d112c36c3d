"""The challenger's pages by keyboard alone: the admin makes a version the challenger on the Models
page, opens its comparison, and promotes it after ticking the confirmation."""

import pytest
from playwright.sync_api import expect

from classifier.models import ModelVersion
from radiology.actions import clinical
from radiology.models import AuditEvent, ChallengerPrediction
from tests.browser.test_daily_flows import on_a_tablet
from tests.factories import ModelVersionFactory, PredictionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def focus_and_press(page, locator, key):
    """Tab through the page until `locator` has the focus, then press `key` (fails if never reached)."""
    for _ in range(60):
        if locator.evaluate("element => element === document.activeElement"):
            page.keyboard.press(key)
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{locator} cannot be reached with the Tab key")


def reviewed_by_both(doctor, champion, challenger, champion_p, challenger_p, final_label):
    prediction = PredictionFactory(model_version=champion, probability=champion_p)
    ChallengerPrediction.objects.create(
        scan=prediction.scan,
        model_version=challenger,
        probability=challenger_p,
        label="PNEUMONIA" if challenger_p >= challenger.threshold else "NORMAL",
        threshold=challenger.threshold,
        inference_ms=3.0,
    )
    decision = "confirm" if prediction.label == final_label else "override"
    clinical.review_scan(doctor, prediction.scan, decision, "checked" if decision == "override" else "")


def test_an_admin_starts_a_challenge_and_promotes_by_keyboard(
    open_browser_as, admin_user, doctor, loadable_files, screenshots
):
    champion = ModelVersionFactory(version="v1", is_active=True, **loadable_files)
    ModelVersionFactory(version="v2-candidate", **loadable_files)
    page = open_browser_as(admin_user)
    page.goto("/models/")

    focus_and_press(page, page.get_by_role("button", name="Make challenger"), "Enter")
    expect(page.get_by_text("Model v2-candidate is the challenger")).to_be_visible()
    screenshots.take(page, "challenger-started")

    challenger = ModelVersion.challenger()
    for champion_p, challenger_p, final_label in [
        (0.9, 0.8, "PNEUMONIA"),
        (0.45, 0.6, "PNEUMONIA"),
        (0.2, 0.1, "NORMAL"),
        (0.7, 0.3, "NORMAL"),
    ]:
        reviewed_by_both(doctor, champion, challenger, champion_p, challenger_p, final_label)

    focus_and_press(page, page.get_by_role("link", name="Comparison and promotion"), "Enter")
    expect(page.get_by_role("heading", name="Challenger v2-candidate against the active model")).to_be_visible()
    expect(page.locator("#compared-count")).to_have_text("4")
    expect(page.locator("#disagreements")).to_have_text("2")
    expect(page.locator("#disagreeing-cases tbody tr")).to_have_count(2)
    expect(page.locator("#few-cases")).to_be_visible()
    screenshots.take(page, "comparison")
    on_a_tablet(page, screenshots, "comparison")

    focus_and_press(page, page.get_by_label("I have read this comparison", exact=False), "Space")
    focus_and_press(page, page.get_by_role("button", name="Promote to active"), "Enter")
    expect(page.get_by_text("Model v2-candidate is now active")).to_be_visible()
    screenshots.take(page, "promoted")

    assert ModelVersion.active().version == "v2-candidate" and ModelVersion.challenger() is None
    assert AuditEvent.objects.filter(action="model_version.promoted", actor=admin_user).exists()
