"""The doctor's queue over the API: the page's order (radiology.triage), doctors only."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from radiology.triage import ReviewQueue
from tests.factories import PredictionFactory, ScanFactory, UserFactory
from tests.support.api import error_of, token_client

URL = "/api/v1/queue/"


@pytest.mark.django_db
def test_the_queue_is_in_review_order_with_overdue_scans_first(doctor, settings):
    settings.TRIAGE_MAX_WAIT_MINUTES = 60
    now = timezone.now()
    likely = PredictionFactory(probability=0.95, scan__uploaded_at=now - timedelta(minutes=5)).scan
    unlikely = PredictionFactory(probability=0.10, scan__uploaded_at=now - timedelta(minutes=5)).scan
    overdue = PredictionFactory(probability=0.20, scan__uploaded_at=now - timedelta(minutes=90)).scan
    ScanFactory(status="queued")  # not predicted yet: not in the queue
    PredictionFactory(scan__status="reviewed")  # already reviewed: not in the queue

    body = token_client(doctor).get(URL).json()

    assert [entry["id"] for entry in body["results"]] == [overdue.pk, likely.pk, unlikely.pk]
    assert [entry["id"] for entry in body["results"]] == ReviewQueue().ids()
    assert [entry["overdue"] for entry in body["results"]] == [True, False, False]
    top = body["results"][1]
    assert top["prediction"]["probability"] == 0.95
    assert top["patient"] == {"id": likely.patient.pk, "mrn": likely.patient.mrn, "name": likely.patient.name}


@pytest.mark.django_db
def test_the_queue_is_paginated_in_order(doctor):
    for probability in (0.9, 0.8, 0.7):
        PredictionFactory(probability=probability)
    client = token_client(doctor)

    first = client.get(URL, {"page_size": 2}).json()
    second = client.get(first["next"]).json()

    probabilities = [e["prediction"]["probability"] for e in first["results"] + second["results"]]
    assert probabilities == [0.9, 0.8, 0.7]


@pytest.mark.django_db
@pytest.mark.parametrize("role, expected", [("doctor", 200), ("radiographer", 403), ("admin", 403), (None, 403)])
def test_only_doctors_see_the_queue(role, expected):
    response = token_client(UserFactory(role=role)).get(URL)

    assert response.status_code == expected
    if expected == 403:
        assert error_of(response)["code"] == "permission_denied"


@pytest.mark.django_db
def test_anonymous_gets_401():
    assert APIClient().get(URL).status_code == 401
