"""Dashboard and metrics API: headline figures from within-use scans only, with 95 % intervals and
the "too few reviews" state; scans outside intended use counted apart (hand-computed values)."""

from datetime import timedelta

import pytest
from django.urls import reverse

from radiology.actions import clinical
from radiology.dashboard import dashboard_metrics
from radiology.monitoring import with_intervals
from tests.factories import PredictionFactory
from tests.support.api import token_client
from tests.test_dashboard import UPLOADED, fixed_set  # noqa: F401 (fixture)


@pytest.fixture
def with_flagged(doctor, fixed_set):  # noqa: F811
    """The fixed set (6 reviewed v1 scans, within use) plus three v1 scans outside intended use
    uploaded the same day: two reviewed (one of them a model error), one waiting."""
    v1, _ = fixed_set
    for probability, reasons, decision in [
        (0.9, ["age"], "override"),
        (0.2, ["image", "view"], "confirm"),
        (0.7, ["age"], None),
    ]:
        prediction = PredictionFactory(
            model_version=v1,
            probability=probability,
            intended_use={"within": False, "reasons": reasons, "score": 20.0},
            scan__uploaded_at=UPLOADED + timedelta(hours=1),
        )
        if decision:
            clinical.review_scan(doctor, prediction.scan, decision, "")
    return fixed_set


def test_headline_figures_count_within_use_scans_with_their_intervals(with_flagged):
    metrics = dashboard_metrics(model_version="v1")
    assert metrics["n"] == 6 and metrics["confusion_matrix"] == [[2, 1], [1, 2]]  # the flagged two left out
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    intervals = metrics["intervals"]
    assert intervals["accuracy"] == pytest.approx([0.299993, 0.903229], abs=1e-5)  # Wilson, 4 of 6
    assert intervals["sensitivity"] == pytest.approx([0.207660, 0.938508], abs=1e-5)  # 2 of 3
    assert intervals["override_rate"] == pytest.approx([0.096771, 0.700007], abs=1e-5)  # 2 of 6
    # Hanley-McNeil: AUC 7/9 with 3 positives and 3 negatives, standard error 0.207344.
    assert intervals["auc"] == pytest.approx([0.371390, 1.0], abs=1e-5)
    assert metrics["too_few_reviews"] is True and metrics["min_reviews"] == 30


def test_scans_outside_intended_use_are_counted_apart(with_flagged):
    flagged = dashboard_metrics(model_version="v1")["outside_intended_use"]
    # v1 predicted 7 scans in the fixed set (one waiting, uploaded now) and the 3 flagged ones.
    assert flagged["predicted"] == 10 and flagged["flagged"] == 3 and flagged["unchecked"] == 10 - 3
    assert flagged["share"] == pytest.approx(0.3)
    assert flagged["share_interval"] == pytest.approx([0.107791, 0.603222], abs=1e-5)
    assert flagged["by_reason"] == {"age": 2, "view": 1, "image": 1}
    assert flagged["by_week"][0] == {"week_start": "2026-03-02", "predicted": 9, "flagged": 3, "share": 3 / 9}
    assert sum(week["flagged"] for week in flagged["by_week"]) == 3


def test_thirty_reviews_are_enough():
    metrics = with_intervals({"confusion_matrix": [[10, 5], [5, 10]], "auc": 0.8})
    assert metrics["too_few_reviews"] is False
    assert with_intervals({"confusion_matrix": [[10, 5], [5, 9]], "auc": 0.8})["too_few_reviews"] is True
    empty = with_intervals({"confusion_matrix": [[0, 0], [0, 0]], "auc": None})
    assert empty["intervals"]["accuracy"] is None and empty["intervals"]["auc"] is None


def test_the_page_says_too_few_and_shows_the_flagged_apart(admin_role_client, with_flagged):
    page = admin_role_client.get(reverse("dashboard"), {"model_version": "v1"}).content.decode()
    assert 'id="too-few-reviews"' in page and "fewer than 30" in page
    assert "[0.300, 0.903]" in page  # the accuracy's interval
    assert '<span id="flagged-count">3</span> of 10 predicted scans' in page
    assert '<td data-reason="age">2</td>' in page


def test_the_metrics_api_carries_intervals_and_the_flagged(admin_user, with_flagged):
    body = token_client(admin_user).get("/api/v1/metrics/", {"model_version": "v1"}).json()
    assert body["n"] == 6 and body["too_few_reviews"] is True
    assert body["intervals"]["accuracy"] == pytest.approx([0.299993, 0.903229], abs=1e-5)
    assert body["outside_intended_use"]["flagged"] == 3
    assert body["outside_intended_use"]["by_reason"] == {"age": 2, "view": 1, "image": 1}


def test_a_new_prediction_outside_intended_use_is_counted_at_once(with_flagged):
    v1, _ = with_flagged
    before = dashboard_metrics(model_version="v1")["outside_intended_use"]["flagged"]
    PredictionFactory(model_version=v1, intended_use={"within": False, "reasons": ["view"], "score": None})
    assert dashboard_metrics(model_version="v1")["outside_intended_use"]["flagged"] == before + 1


def test_the_reliability_view_from_reviews_against_hand_computed_values(admin_role_client, admin_user, with_flagged):
    reliability = dashboard_metrics(model_version="v1")["reliability"]
    # v1's within-use reviews: 0.9 pneumonia, 0.8 normal (corrected), 0.6 pneumonia, 0.3 pneumonia,
    # 0.2 normal, 0.1 normal; one per bin. The flagged ones (0.9 and 0.2) are left out.
    counts = [row["n"] for row in reliability["bins"]]
    assert counts == [0, 1, 1, 1, 0, 0, 1, 0, 1, 1]
    # Each score counts at the middle of its bin of width 0.001: 0.8 as 0.8005.
    assert reliability["bins"][8] == {"low": 0.8, "high": 0.9, "n": 1, "mean_probability": 0.8005, "observed": 0.0}
    # Three terms gain 0.0005 (normal), three lose it (pneumonia).
    assert reliability["ece"] == pytest.approx((0.1 + 0.8 + 0.4 + 0.7 + 0.2 + 0.1) / 6)
    page = admin_role_client.get(reverse("dashboard"), {"model_version": "v1"}).content.decode()
    assert '<span id="reliability-ece">0.383</span>' in page
    body = token_client(admin_user).get("/api/v1/metrics/", {"model_version": "v1"}).json()
    assert body["reliability"]["ece"] == pytest.approx(2.3 / 6)
