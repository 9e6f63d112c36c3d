"""Accuracy metrics over the API: radiology.dashboard.dashboard_metrics, filtered, admins only."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from radiology.models import Review
from radiology.outcomes import refresh_review_outcome
from tests.factories import ModelVersionFactory, PredictionFactory, UserFactory
from tests.support.api import error_of, token_client

URL = "/api/v1/metrics/"


def reviewed(doctor, probability, final_label, version, uploaded_at=None):
    prediction = PredictionFactory(
        probability=probability,
        model_version=version,
        scan__status="reviewed",
        scan__uploaded_at=uploaded_at or timezone.now(),
    )
    decision = "confirm" if final_label == prediction.label else "override"
    Review.objects.create(scan=prediction.scan, doctor=doctor, decision=decision, final_label=final_label)
    refresh_review_outcome(prediction.scan_id)  # a review written directly, not through the review action
    return prediction


@pytest.mark.django_db
def test_metrics_over_reviewed_scans(admin_user, doctor):
    version = ModelVersionFactory(version="v1")
    reviewed(doctor, 0.9, "PNEUMONIA", version)  # tp
    reviewed(doctor, 0.8, "NORMAL", version)  # fp
    reviewed(doctor, 0.2, "NORMAL", version)  # tn
    reviewed(doctor, 0.3, "PNEUMONIA", version)  # fn
    reviewed(doctor, 0.7, "PNEUMONIA", version)  # tp
    PredictionFactory(probability=0.99, model_version=version)  # not reviewed: not counted

    body = token_client(admin_user).get(URL).json()

    assert body["n"] == 5
    assert body["confusion_matrix"] == [[1, 1], [1, 2]]
    assert body["accuracy"] == pytest.approx(3 / 5)
    assert body["sensitivity"] == pytest.approx(2 / 3)
    assert body["specificity"] == pytest.approx(1 / 2)
    assert body["precision"] == pytest.approx(2 / 3)
    assert body["f1"] == pytest.approx(2 / 3)
    assert body["auc"] == pytest.approx(4 / 6)
    assert body["override_rate"] == pytest.approx(2 / 5)
    assert body["model_versions"] == ["v1"]


@pytest.mark.django_db
def test_metrics_filter_by_model_version_and_upload_dates(admin_user, doctor):
    old, new = ModelVersionFactory(version="v1"), ModelVersionFactory(version="v2")
    today = timezone.localdate()
    reviewed(doctor, 0.9, "PNEUMONIA", old, uploaded_at=timezone.now() - timedelta(days=10))
    reviewed(doctor, 0.1, "NORMAL", new)
    reviewed(doctor, 0.2, "PNEUMONIA", new)
    client = token_client(admin_user)

    assert client.get(URL, {"model_version": "v2"}).json()["n"] == 2
    assert client.get(URL, {"model_version": "v1"}).json()["n"] == 1
    assert client.get(URL, {"start": (today - timedelta(days=1)).isoformat()}).json()["n"] == 2
    assert (
        client.get(
            URL, {"end": (today - timedelta(days=5)).isoformat(), "start": (today - timedelta(days=20)).isoformat()}
        ).json()["n"]
        == 1
    )


@pytest.mark.django_db
def test_no_reviewed_scans_gives_undefined_metrics_as_null(admin_user):
    body = token_client(admin_user).get(URL).json()

    assert body["n"] == 0 and body["accuracy"] is None and body["auc"] is None
    assert body["confusion_matrix"] == [[0, 0], [0, 0]]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params, field",
    [
        ({"start": "2025-13-01"}, "start"),
        ({"start": "2025-06-02", "end": "2025-06-01"}, "end"),
    ],
)
def test_invalid_filters_are_named(admin_user, params, field):
    response = token_client(admin_user).get(URL, params)

    assert response.status_code == 400
    assert field in error_of(response)["fields"]


@pytest.mark.django_db
def test_an_unknown_model_version_is_a_404_naming_it(admin_user):
    response = token_client(admin_user).get(URL, {"model_version": "no-such-version"})

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found" and "model_version" in error_of(response)["fields"]


@pytest.mark.django_db
@pytest.mark.parametrize("role, expected", [("admin", 200), ("doctor", 403), ("radiographer", 403), (None, 403)])
def test_only_admins_see_metrics(role, expected):
    assert token_client(UserFactory(role=role)).get(URL).status_code == expected


@pytest.mark.django_db
def test_anonymous_gets_401():
    assert APIClient().get(URL).status_code == 401
