"""From 100 within-use reviews the dashboard shows the threshold the site's rule would choose from the
doctors' labels, and an admin records it as a calibrated model version (calibrate_model's code path)."""

import pytest
from django.urls import reverse

from classifier.models import ModelVersion
from radiology.models import AuditEvent, ReviewOutcome
from radiology.monitoring import threshold_suggestion
from tests.factories import ModelVersionFactory, PredictionFactory


def outcome(version, probability, pneumonia, within=True):
    prediction = PredictionFactory(model_version=version, probability=probability)
    return ReviewOutcome.objects.create(
        scan=prediction.scan,
        model_version=version,
        uploaded_at=prediction.scan.uploaded_at,
        probability=probability,
        threshold=version.threshold,
        predicted_positive=probability >= version.threshold,
        actual_positive=pneumonia,
        upload_to_prediction_s=1.0,
        prediction_to_review_s=1.0,
        within_intended_use=within,
    )


@pytest.fixture
def active(db):
    version = ModelVersionFactory(version="m1", threshold=0.7, metadata={"threshold_rule": "sensitivity>=0.97"})
    version.activate()
    return version


def reviewed(version, count):
    """`count` reviews: pneumonia at 0.60, 0.61, ..., normal at 0.50, 0.49, ... (alternating), and
    three flagged scans that must not count."""
    for i in range(count):
        if i % 2:
            outcome(version, 0.60 + (i // 2) * 0.003, True)
        else:
            outcome(version, 0.50 - (i // 2) * 0.003, False)
    for probability in (0.95, 0.05, 0.4):
        outcome(version, probability, probability < 0.5, within=False)


def test_no_suggestion_below_one_hundred_reviews(admin_role_client, active):
    reviewed(active, 99)
    suggestion = threshold_suggestion(active)
    assert suggestion["available"] is False and suggestion["n"] == 99
    page = admin_role_client.get(reverse("dashboard")).content.decode()
    assert "99 of the 100 reviewed scans" in page and 'id="record-threshold"' not in page


def test_the_suggestion_against_hand_computed_values(admin_role_client, active):
    reviewed(active, 100)
    suggestion = threshold_suggestion(active)
    assert suggestion["available"] is True and suggestion["n"] == 100
    # Separable: every threshold between 0.50 and 0.60 has sensitivity 1 and specificity 1; the
    # rule puts it halfway between the lowest pneumonia score and the highest normal one.
    assert suggestion["threshold"] == pytest.approx(0.55)
    assert suggestion["metrics"]["confusion_matrix"] == [[50, 0], [0, 50]]
    # At 0.7 in force, pneumonia scored 0.600 + 0.003 k for k = 0 .. 33 (up to 0.699) are missed: 34 of 50.
    assert suggestion["current"]["confusion_matrix"] == [[50, 0], [34, 16]]
    page = admin_role_client.get(reverse("dashboard")).content.decode()
    assert '<strong id="suggested-threshold">0.5500</strong>' in page and 'id="record-threshold"' in page


def test_an_admin_records_it_as_an_inactive_calibrated_version(admin_role_client, admin_user, doctor_client, active):
    reviewed(active, 100)
    url = reverse("record_threshold_from_reviews", args=[active.pk])
    assert doctor_client.post(url).status_code == 403
    answer = admin_role_client.post(url)
    assert answer.status_code == 302 and answer.url == reverse("model_versions")
    recorded = ModelVersion.objects.get(parent=active)
    assert recorded.version == "m1-cal-reviews" and not recorded.is_active
    assert recorded.threshold == pytest.approx(0.55) and recorded.sha256 == active.sha256
    calibration = recorded.metadata["calibration"]
    assert calibration["base_version"] == "m1" and calibration["rule"] == "sensitivity>=0.97"
    assert calibration["data"] == {"images": 100, "pneumonia": 50, "normal": 50}
    event = AuditEvent.objects.get(action="model_version.calibrated")
    assert event.actor == admin_user and event.after["threshold"] == pytest.approx(0.55)


def test_too_few_reviews_are_refused_and_nothing_is_recorded(admin_role_client, active):
    reviewed(active, 40)
    admin_role_client.post(reverse("record_threshold_from_reviews", args=[active.pk]))
    assert not ModelVersion.objects.filter(parent=active).exists()
    assert not AuditEvent.objects.filter(action="model_version.calibrated").exists()


def test_the_suggestion_is_read_once_per_new_review_and_equals_a_recomputation(active, django_assert_max_num_queries):
    from radiology.monitoring import compute_threshold_suggestion

    reviewed(active, 100)
    first = threshold_suggestion(active)
    with django_assert_max_num_queries(2):  # the two "latest" lookups; the sample is not read again
        again = threshold_suggestion(active)
    assert again == first == compute_threshold_suggestion(active)

    outcome(active, 0.45, True)  # a new reviewed scan: pneumonia below every earlier one
    after = threshold_suggestion(active)
    assert after["n"] == 101 and after == compute_threshold_suggestion(active)
    assert after["current"]["confusion_matrix"] == [[50, 0], [35, 16]]  # the new one missed at 0.7
