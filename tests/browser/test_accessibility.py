"""Every page each role reaches passes axe-core's WCAG 2.0/2.1 A and AA rules in Chromium.

axe-core is the copy bundled in the pinned `axe-playwright-python` wheel (nothing is fetched at run
time). Playwright evaluates it through the DevTools protocol, so the pages' Content-Security-Policy
stays as served. One test per role walks its pages with data on them (a flagged scan, a scan another
doctor reads, a failed scan, a challenger, PACS conflicts...), forms with their errors, the API docs
with an operation open and the session warning shown, and fails listing every violation: page, rule
id, impact, target.
"""

import time

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.contrib.auth.tokens import default_token_generator
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from playwright.sync_api import expect

from classifier.models import ModelVersion
from radiology import session_limits
from radiology.actions import clinical, reading
from radiology.models import ChallengerPrediction
from radiology.pacs.models import OutboxItem, PacsInstance, PollState
from radiology.web.views import PAGE_SIZE
from tests.factories import ModelVersionFactory, PatientFactory, PredictionFactory, ScanFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WCAG_A_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": WCAG_A_AA}, "resultTypes": ["violations"]}


class AccessibilityAudit:
    """Runs axe on pages as they are shown and keeps each violation as one readable line."""

    def __init__(self):
        self.axe = Axe()
        self.violations = []
        self.pages = []

    def check(self, page, what):
        page.wait_for_load_state("load")
        self.pages.append(what)
        results = self.axe.run(page, options=AXE_OPTIONS).response
        for violation in results["violations"]:
            for node in violation["nodes"]:
                target = " ".join(str(part) for part in node["target"])
                self.violations.append(f"{what}: {violation['id']} ({violation['impact']}) at {target}")

    def visit(self, page, url, what):
        response = page.goto(url)
        assert response.status == 200, f"{what}: {url} answered HTTP {response.status}"
        self.check(page, what)

    def submit_without_browser_checks(self, page, button, what):
        """Submits the form as the server would get it with fields left empty, to check its error messages."""
        page.locator("form:has(button[type=submit])").last.evaluate("form => { form.noValidate = true; }")
        page.get_by_role("button", name=button).click()
        expect(page.locator(".errorlist, .form-errors").first).to_be_visible()
        self.check(page, what)

    def assert_clean(self):
        assert self.pages, "no page was checked"
        assert not self.violations, "WCAG 2.1 A/AA violations:\n" + "\n".join(self.violations)


@pytest.fixture
def audit():
    return AccessibilityAudit()


def test_pages_before_login(chromium, live_server, radiographer, audit):
    context = chromium.new_context(base_url=live_server.url)
    try:
        page = context.new_page()
        audit.visit(page, reverse("login"), "login")
        page.get_by_label("Username").fill(radiographer.username)
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Log in").click()
        expect(page.locator(".errorlist, .form-errors, [role=alert]").first).to_be_visible()
        audit.check(page, "login with an error")

        token = default_token_generator.make_token(radiographer)
        uid = urlsafe_base64_encode(force_bytes(radiographer.pk))
        page.goto(reverse("password_reset_confirm", args=[uid, token]))  # redirects to the set-password form
        expect(page.locator("input[type=password]").first).to_be_visible()
        audit.check(page, "password reset form")
        audit.visit(page, reverse("password_reset_complete"), "password reset done")
    finally:
        context.close()
    audit.assert_clean()


def test_radiographer_pages(open_browser_as, radiographer, audit):
    patient = PatientFactory(mrn="A11Y-001", name="Ada Access")
    PatientFactory.create_batch(PAGE_SIZE)
    PredictionFactory(scan__patient=patient, scan__uploaded_by=radiographer)
    ScanFactory(patient=patient, status="queued", uploaded_by=radiographer)
    ScanFactory(patient=patient, status="failed", failure_reason="Unreadable image", uploaded_by=radiographer)
    page = open_browser_as(radiographer)

    audit.visit(page, reverse("patient_list"), "patient list")
    audit.visit(page, reverse("patient_list") + "?page=2", "patient list, second page")
    audit.visit(page, reverse("patient_detail", args=[patient.pk]), "patient detail")
    audit.visit(page, reverse("patient_create"), "new patient")
    audit.submit_without_browser_checks(page, "Create patient", "new patient with errors")
    audit.visit(page, reverse("upload"), "upload")
    audit.visit(page, reverse("upload") + f"?patient={patient.pk}", "upload for a chosen patient")
    audit.submit_without_browser_checks(page, "Upload", "upload with errors")
    audit.visit(page, reverse("scan_status"), "scan status")
    page.goto(reverse("api-docs"))
    expect(page.get_by_role("heading", name="PneumoScan API")).to_be_visible()  # drawn by Swagger UI's script
    audit.check(page, "API docs")
    page.get_by_role("button", name="GET /api/v1/patients/", exact=False).first.click()
    page.get_by_role("button", name="Try it out").click()
    expect(page.get_by_role("button", name="Execute")).to_be_visible()
    audit.check(page, "API docs, an operation tried out")
    page.get_by_role("button", name="Authorize").first.click()
    expect(page.get_by_role("heading", name="Available authorizations")).to_be_visible()
    audit.check(page, "API docs, Authorize dialog")
    assert page.goto(reverse("dashboard")).status == 403
    audit.check(page, "refused (403)")
    assert page.goto("/no-such-page/").status == 404
    audit.check(page, "not found (404)")
    audit.assert_clean()


def test_doctor_pages(settings, monkeypatch, open_browser_as, doctor, audit):
    patient = PatientFactory(mrn="A11Y-002", name="Bea Access")
    model = ModelVersionFactory(is_active=True)
    within = PredictionFactory(scan__patient=patient, model_version=model, probability=0.72)
    flagged = PredictionFactory(
        scan__patient=patient,
        model_version=model,
        probability=0.61,
        intended_use={"within": False, "reasons": ["image"], "score": 30.0},
    )
    reviewed = PredictionFactory(scan__patient=patient, model_version=model, probability=0.2)
    clinical.review_scan(doctor, reviewed.scan, "confirm", "")
    being_read = PredictionFactory(scan__patient=patient, model_version=model, probability=0.55)
    reading.claim_for_reading(UserFactory(username="a11y-other-doctor", role="doctor"), being_read.scan.pk)
    settings.SESSION_IDLE_MINUTES = 15
    server_now = [time.time()]
    monkeypatch.setattr(session_limits, "now", lambda: server_now[0])
    page = open_browser_as(doctor)

    audit.visit(page, reverse("review_queue"), "review queue")
    audit.visit(page, reverse("review", args=[within.scan.pk]), "review")
    audit.visit(page, reverse("review", args=[flagged.scan.pk]), "review outside intended use")
    page.get_by_role("button", name="Show the model's output anyway").click()
    expect(page.locator("#probability")).to_be_visible()
    audit.check(page, "review outside intended use, output shown")
    audit.visit(page, reverse("review", args=[being_read.scan.pk]), "review of a scan another doctor reads")
    audit.visit(page, reverse("patient_history", args=[patient.pk]), "patient history")
    audit.visit(page, reverse("password_change"), "password change")
    audit.submit_without_browser_checks(page, "Change my password", "password change with errors")

    page.clock.install()
    with page.expect_response(lambda response: "/session/" in response.url):
        page.goto(reverse("review_queue"))
    page.wait_for_timeout(300)
    server_now[0] += 14 * 60 + 5
    page.clock.run_for((14 * 60 + 5) * 1000)
    expect(page.locator("#session-warning")).to_be_visible()
    audit.check(page, "session warning")
    audit.assert_clean()


def test_admin_pages(settings, open_browser_as, admin_user, doctor, loadable_files, audit):
    champion = ModelVersionFactory(version="a11y-v1", is_active=True, **loadable_files)
    challenger = ModelVersionFactory(
        version="a11y-v2", is_challenger=True, challenger_since=timezone.now(), **loadable_files
    )
    ModelVersionFactory(version="a11y-v3", **loadable_files)
    for probability, challenger_probability, decision in [(0.9, 0.3, "confirm"), (0.2, 0.7, "override")]:
        prediction = PredictionFactory(model_version=champion, probability=probability)
        ChallengerPrediction.objects.create(
            scan=prediction.scan,
            model_version=challenger,
            probability=challenger_probability,
            label="PNEUMONIA" if challenger_probability >= challenger.threshold else "NORMAL",
            threshold=challenger.threshold,
            inference_ms=3.0,
        )
        clinical.review_scan(doctor, prediction.scan, decision, "checked" if decision == "override" else "")
    ScanFactory(status="failed", failure_reason="Model a11y-v0 cannot be loaded")
    settings.PACS_DICOMWEB_URL = "http://pacs.example:8042/dicom-web"
    PollState.objects.update_or_create(
        pk=1, defaults={"last_success_at": timezone.now(), "last_error": "refused", "last_error_at": timezone.now()}
    )
    for n, outcome, reason in [(1, "conflict", "names differ"), (2, "skipped", "lateral view"), (3, "ingested", "")]:
        PacsInstance.objects.create(
            sop_instance_uid=f"2.25.{n}",
            study_instance_uid="2.25.100",
            series_instance_uid="2.25.200",
            patient_id="MRN-A11Y",
            outcome=outcome,
            reason=reason,
        )
    OutboxItem.objects.create(
        kind="overlay",
        scan=ScanFactory(),
        study_instance_uid="2.25.9",
        series_instance_uid="2.25.10",
        sop_instance_uid="2.25.11",
        attempts=2,
        last_error="ConnectionError: refused",
    )
    page = open_browser_as(admin_user)

    audit.visit(page, reverse("dashboard"), "dashboard")
    audit.visit(page, reverse("model_versions"), "model versions")
    audit.visit(page, reverse("model_comparison", args=[ModelVersion.challenger().pk]), "model comparison")
    audit.visit(page, reverse("failed_scans"), "failed scans")
    audit.visit(page, reverse("pacs_status"), "PACS")
    audit.visit(page, reverse("audit_trail"), "audit")
    audit.visit(page, reverse("password_change"), "password change (admin)")
    audit.visit(page, reverse("password_change_done"), "password changed")
    audit.visit(page, reverse("admin:auth_user_changelist"), "users (Django admin)")
    audit.visit(page, reverse("admin:auth_user_change", args=[doctor.pk]), "a user (Django admin)")
    audit.assert_clean()
