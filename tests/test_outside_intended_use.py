"""A scan outside intended use: the review page hides the model's output until asked (audited),
the doctor records the final label, the queue orders it by wait, the API carries the check."""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from radiology.models import AuditEvent, Review
from radiology.triage import ReviewQueue
from tests.conftest import logged_in
from tests.factories import PredictionFactory, UserFactory
from tests.support.api import token_client

FLAGGED = {"within": False, "reasons": ["age", "image"], "score": 12.3}
WITHIN = {"within": True, "reasons": [], "score": 1.5}


def predicted(intended_use, probability=0.8124, waited_minutes=1):
    return PredictionFactory(
        probability=probability,
        intended_use=intended_use,
        model_version__threshold=0.42,
        scan__uploaded_at=timezone.now() - timedelta(minutes=waited_minutes),
    )


def test_the_review_page_leads_with_the_reasons_and_hides_the_output(doctor_client):
    prediction = predicted(FLAGGED)
    page = doctor_client.get(reverse("review", args=[prediction.scan.pk])).content.decode()
    assert "Outside intended use: the patient&#x27;s age is outside the ages the model was trained on; " in page
    assert "the image does not look like the X-rays the model was trained on." in page
    assert page.index('id="outside-intended-use"') < page.index('id="xray"')
    for hidden in ["0.812", "0.420", 'id="probability"', reverse("scan_heatmap", args=[prediction.scan.pk])]:
        assert hidden not in page
    assert "Confirm pneumonia" not in page and 'id="confirm-button"' not in page
    assert 'id="show-model-output"' in page and 'id="final-pneumonia-button"' in page


def test_showing_the_output_is_a_recorded_form_post(doctor_client, doctor):
    prediction = predicted(FLAGGED)
    scan = prediction.scan
    assert doctor_client.get(reverse("show_model_output", args=[scan.pk])).status_code == 405
    answer = doctor_client.post(reverse("show_model_output", args=[scan.pk]))
    assert answer.status_code == 302 and answer.url == reverse("review", args=[scan.pk])
    event = AuditEvent.objects.get(action="scan.model_output_shown", object_id=str(scan.pk))
    assert event.actor == doctor and event.after["intended_use"] == FLAGGED

    page = doctor_client.get(reverse("review", args=[scan.pk])).content.decode()
    assert "0.812" in page and reverse("scan_heatmap", args=[scan.pk]) in page and 'id="confirm-button"' in page
    assert "You asked to see the model" in page
    # Another doctor has not asked: still hidden for them.
    other = logged_in(UserFactory(username="doctor2", role="doctor"))
    assert "0.812" not in other.get(reverse("review", args=[scan.pk])).content.decode()


def test_a_within_use_prediction_cannot_be_shown_twice_over(doctor_client):
    prediction = predicted(WITHIN)
    doctor_client.post(reverse("show_model_output", args=[prediction.scan.pk]))
    assert not AuditEvent.objects.filter(action="scan.model_output_shown").exists()
    page = doctor_client.get(reverse("review", args=[prediction.scan.pk])).content.decode()
    assert "0.812" in page and 'id="outside-intended-use"' not in page


def test_the_doctor_records_the_final_label_without_a_note(doctor_client):
    prediction = predicted(FLAGGED)  # the hidden model said PNEUMONIA
    answer = doctor_client.post(reverse("review", args=[prediction.scan.pk]), {"final_label": "NORMAL"})
    assert answer.status_code == 302
    review = Review.objects.get(scan=prediction.scan)
    assert review.final_label == "NORMAL" and review.decision == Review.Decision.OVERRIDE and review.note == ""


def test_a_within_use_override_still_needs_a_note(doctor_client):
    prediction = predicted(WITHIN)
    answer = doctor_client.post(reverse("review", args=[prediction.scan.pk]), {"final_label": "NORMAL"})
    assert answer.status_code == 400 and not Review.objects.exists()


def test_the_queue_marks_flagged_scans_and_orders_them_by_wait(doctor_client, settings):
    settings.TRIAGE_MAX_WAIT_MINUTES = 60
    overdue = predicted(WITHIN, probability=0.1, waited_minutes=90)
    flagged_old = predicted(FLAGGED, probability=0.01, waited_minutes=20)
    flagged_new = predicted(FLAGGED, probability=0.99, waited_minutes=2)
    likely = predicted(WITHIN, probability=0.9, waited_minutes=5)
    unlikely = predicted(WITHIN, probability=0.2, waited_minutes=30)
    old_prediction = predicted(None, probability=0.5, waited_minutes=3)  # made before the check: by score

    order = [scan.pk for scan in ReviewQueue()[:]]
    expected = [overdue, flagged_old, flagged_new, likely, old_prediction, unlikely]
    assert order == [p.scan.pk for p in expected]
    assert [scan.overdue_rank for scan in ReviewQueue()[:]] == [0, 1, 1, 1, 1, 1]
    queue = ReviewQueue()
    assert [queue.id_after(p.scan.pk) for p in expected] == [p.scan.pk for p in expected[1:] + expected[:1]]

    page = doctor_client.get(reverse("review_queue")).content.decode()
    assert page.count("data-outside-intended-use") == 2
    assert "0.990" not in page and "0.900" in page


def test_the_api_scan_record_carries_the_check_for_every_role_that_sees_predictions(
    doctor, integration_account, admin_user
):
    prediction = predicted(FLAGGED)
    for user in (doctor, integration_account):
        record = token_client(user).get(f"/api/v1/scans/{prediction.scan.pk}/").json()
        assert record["prediction"]["intended_use"] == FLAGGED, user.username
    assert "prediction" not in token_client(admin_user).get(f"/api/v1/scans/{prediction.scan.pk}/").json()
    queue = token_client(doctor).get("/api/v1/queue/").json()
    assert queue["results"][0]["prediction"]["intended_use"] == FLAGGED
