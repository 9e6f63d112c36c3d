"""Dashboard metrics against values computed by hand on a small fixed set of reviewed scans."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from radiology.actions import clinical
from radiology.dashboard import dashboard_metrics
from radiology.models import Review
from radiology.outcomes import refresh_review_outcome
from radiology.templatetags.durations import duration
from tests.factories import ModelVersionFactory, PredictionFactory

UPLOADED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def reviewed(doctor, version, probability, decision, upload_to_prediction_s, prediction_to_review_s, uploaded=UPLOADED):
    prediction = PredictionFactory(
        model_version=version,
        probability=probability,
        scan__uploaded_at=uploaded,
        created_at=uploaded + timedelta(seconds=upload_to_prediction_s),
    )
    review = clinical.review_scan(doctor, prediction.scan, decision, "reason" if decision == "override" else "")
    Review.objects.filter(pk=review.pk).update(
        created_at=prediction.created_at + timedelta(seconds=prediction_to_review_s)
    )
    refresh_review_outcome(prediction.scan_id)  # the test rewrote history behind the review action
    return prediction.scan


@pytest.fixture
def fixed_set(doctor):
    """Six scans by v1 (threshold 0.5):

    p=0.9 confirm -> TP | p=0.8 confirm, later corrected to normal -> FP | p=0.6 confirm -> TP
    p=0.3 override -> FN | p=0.2 confirm -> TN | p=0.1 confirm -> TN
    plus one by v2 (threshold 0.3) ten days later, p=0.4 confirm -> TP, and one not yet reviewed.
    """
    v1 = ModelVersionFactory(
        version="v1",
        threshold=0.5,
        evaluation={
            "test": {
                "auc": 0.91,
                "accuracy": 0.85,
                "sensitivity": 0.9,
                "specificity": 0.8,
                "precision": 0.88,
                "f1": 0.89,
            }
        },
    )
    v2 = ModelVersionFactory(version="v2", threshold=0.3)
    plan = [(0.9, "confirm"), (0.8, "confirm"), (0.6, "confirm"), (0.3, "override"), (0.2, "confirm"), (0.1, "confirm")]
    scans = [reviewed(doctor, v1, p, decision, 10 * (i + 1), 60 * (i + 1)) for i, (p, decision) in enumerate(plan)]
    correction = clinical.review_scan(
        doctor, scans[1], "override", "Effusion, not pneumonia.", supersedes=scans[1].latest_review()
    )
    Review.objects.filter(pk=correction.pk).update(created_at=UPLOADED + timedelta(hours=5))
    refresh_review_outcome(scans[1].pk)
    reviewed(doctor, v2, 0.4, "confirm", 5, 5, uploaded=UPLOADED + timedelta(days=10))
    PredictionFactory(model_version=v1, probability=0.95)  # waiting for review: not counted
    return v1, v2


def test_metrics_of_one_model_version_match_the_hand_computed_values(fixed_set):
    metrics = dashboard_metrics(model_version="v1")
    assert metrics["n"] == 6
    assert metrics["confusion_matrix"] == [[2, 1], [1, 2]]
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["sensitivity"] == pytest.approx(2 / 3)
    assert metrics["specificity"] == pytest.approx(2 / 3)
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(2 / 3)
    assert metrics["auc"] == pytest.approx(7 / 9)  # positives 0.9, 0.6, 0.3 beat 3 + 2 + 2 of the 9 negative pairs
    assert metrics["override_rate"] == pytest.approx(2 / 6)
    assert metrics["threshold"] == 0.5
    assert metrics["model_versions"] == ["v1"]
    assert metrics["turnaround"]["upload_to_prediction"] == pytest.approx(
        {"n": 6, "median_s": 35, "p95_s": 57.5, "mean_s": 35}
    )
    # From the prediction to the first review: the correction five hours later is not the turnaround.
    assert metrics["turnaround"]["prediction_to_review"] == pytest.approx(
        {"n": 6, "median_s": 210, "p95_s": 345, "mean_s": 210}
    )


def test_all_versions_together_keep_each_predictions_own_threshold(fixed_set):
    metrics = dashboard_metrics()
    assert metrics["n"] == 7
    assert metrics["confusion_matrix"] == [[2, 1], [1, 3]]  # v2's 0.4 is pneumonia at its 0.3 threshold
    assert metrics["threshold"] is None and metrics["thresholds"] == [0.3, 0.5]
    assert metrics["model_versions"] == ["v1", "v2"]


def test_date_range_filters_by_upload_day(fixed_set):
    day = UPLOADED.date()
    assert dashboard_metrics(end=day)["n"] == 6  # the whole end day is included
    assert dashboard_metrics(start=day + timedelta(days=1))["n"] == 1
    assert dashboard_metrics(start=day + timedelta(days=1), end=day + timedelta(days=9))["n"] == 0
    assert dashboard_metrics(model_version=fixed_set[1], start=day)["n"] == 1


def test_no_reviewed_scans_gives_undefined_metrics(db):
    metrics = dashboard_metrics()
    assert metrics["n"] == 0
    assert metrics["accuracy"] is None and metrics["auc"] is None and metrics["override_rate"] is None
    assert metrics["turnaround"]["upload_to_prediction"]["median_s"] is None


def test_metrics_are_json_ready(fixed_set):
    import json

    assert json.loads(json.dumps(dashboard_metrics()))["n"] == 7


def test_the_page_shows_metrics_next_to_the_offline_evaluation(admin_role_client, fixed_set):
    page = admin_role_client.get(reverse("dashboard") + "?model_version=v1").content.decode()
    assert '<span id="reviewed-count">6</span>' in page
    assert (
        'data-cell="tn">2<' in page
        and 'data-cell="fp">1<' in page
        and 'data-cell="fn">1<' in page
        and 'data-cell="tp">2<' in page
    )
    assert "Offline: test" in page and "0.910" in page and "0.778" in page and "0.667" in page
    assert '<td id="override-rate">0.333 <span class="muted" data-interval>[0.097, 0.700]</span></td>' in page
    assert "35.0 s" in page and "57.5 s" in page and "3 min 30 s" in page and "5 min 45 s" in page
    assert reverse("dashboard_roc_png") + "?model_version=v1" in page
    assert "Decision aid trained on pediatric chest X-rays; the doctor decides." in page


@pytest.mark.parametrize(
    "seconds, shown",
    [
        (None, "—"),
        (4.25, "4.2 s"),
        (59.94, "59.9 s"),
        (60, "1 min 0 s"),
        (3599, "59 min 59 s"),
        (4800, "1 h 20 min"),
        (49 * 3600, "2 d 1 h"),
    ],
)
def test_durations_read_as_people_read_them(seconds, shown):
    assert duration(seconds) == shown


def test_charts_are_pngs_drawn_on_the_server(admin_role_client, fixed_set):
    for name in ("dashboard_roc_png", "dashboard_confusion_png"):
        response = admin_role_client.get(reverse(name) + "?model_version=v1")
        assert response["Content-Type"] == "image/png"
        assert response.content.startswith(PNG_SIGNATURE)


def test_an_empty_or_invalid_filter_is_explained(admin_role_client, db):
    assert b"No reviewed scans yet." in admin_role_client.get(reverse("dashboard")).content
    page = admin_role_client.get(reverse("dashboard") + "?start=2026-03-05&end=2026-03-01").content
    assert b"The start date is after the end date." in page


def test_metrics_over_time_are_split_by_week_of_upload(fixed_set):
    first, second = dashboard_metrics()["by_week"]
    assert first == pytest.approx(
        {
            "week_start": "2026-03-02",
            "n": 6,
            "accuracy": 4 / 6,
            "sensitivity": 2 / 3,
            "specificity": 2 / 3,
            "auc": 7 / 9,
            "override_rate": 2 / 6,
        }
    )
    # The v2 scan ten days later: one true positive, so specificity and AUC are undefined.
    assert second == {
        "week_start": "2026-03-09",
        "n": 1,
        "accuracy": 1.0,
        "sensitivity": 1.0,
        "specificity": None,
        "auc": None,
        "override_rate": 0.0,
    }


def test_the_dashboard_page_shows_the_weekly_trend(admin_role_client, fixed_set):
    page = admin_role_client.get(reverse("dashboard")).content.decode()
    assert 'id="by-week"' in page
    assert "2026-03-02" in page and "2026-03-09" in page
