"""Reviews over the API: doctors confirm or override through radiology.actions.clinical.review_scan."""

import pytest
from rest_framework.test import APIClient

from radiology.models import AuditEvent, Review, Scan
from tests.factories import PredictionFactory, ScanFactory, UserFactory
from tests.support.api import error_of, token_client

URL = "/api/v1/reviews/"


@pytest.fixture
def predicted(db):
    return PredictionFactory(probability=0.9).scan  # the model said PNEUMONIA


@pytest.mark.django_db
def test_a_doctor_confirms_the_prediction(doctor, predicted):
    response = token_client(doctor).post(
        URL, {"scan": predicted.pk, "decision": "confirm", "final_label": "PNEUMONIA"}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["scan"], body["decision"], body["final_label"], body["doctor"]) == (
        predicted.pk,
        "confirm",
        "PNEUMONIA",
        "doctor1",
    )
    predicted.refresh_from_db()
    assert predicted.status == Scan.Status.REVIEWED
    assert AuditEvent.objects.filter(action="scan.reviewed", object_id=str(predicted.pk), actor=doctor).exists()


@pytest.mark.django_db
def test_an_override_needs_a_note_and_flips_the_label(doctor, predicted):
    client = token_client(doctor)

    refused = client.post(URL, {"scan": predicted.pk, "decision": "override"}, format="json")
    assert refused.status_code == 400
    assert "note" in error_of(refused)["fields"]
    assert not Review.objects.exists()

    accepted = client.post(
        URL, {"scan": predicted.pk, "decision": "override", "note": "Lungs clear on lateral view."}, format="json"
    )
    assert accepted.status_code == 201
    assert accepted.json()["final_label"] == "NORMAL"


@pytest.mark.django_db
def test_a_final_label_that_contradicts_the_decision_is_refused(doctor, predicted):
    response = token_client(doctor).post(
        URL, {"scan": predicted.pk, "decision": "confirm", "final_label": "NORMAL"}, format="json"
    )

    assert response.status_code == 400
    assert "final_label" in error_of(response)["fields"]
    assert not Review.objects.exists()


@pytest.mark.django_db
def test_a_later_review_corrects_the_earlier_one(doctor, predicted):
    client = token_client(doctor)
    first = client.post(URL, {"scan": predicted.pk, "decision": "confirm"}, format="json").json()

    second = client.post(
        URL,
        {"scan": predicted.pk, "decision": "override", "note": "Second look.", "supersedes": first["id"]},
        format="json",
    ).json()

    assert second["supersedes"] == first["id"]
    assert AuditEvent.objects.filter(action="scan.review_corrected", object_id=str(predicted.pk)).exists()


@pytest.mark.django_db
def test_a_scan_without_prediction_cannot_be_reviewed(doctor):
    scan = ScanFactory()

    response = token_client(doctor).post(URL, {"scan": scan.pk, "decision": "confirm"}, format="json")

    assert response.status_code == 409
    body = response.json()
    assert "no prediction" in body["error"]["message"] and body["error"]["code"] == "conflict"
    assert body["latest_review"] is None
    assert not Review.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["scan", "supersedes"])
def test_an_unknown_scan_or_review_is_a_404_naming_it(doctor, predicted, field):
    body = {"scan": predicted.pk, "decision": "confirm", field: 999999}

    response = token_client(doctor).post(URL, body, format="json")

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found" and field in error_of(response)["fields"]
    assert not Review.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, field",
    [
        ({"decision": "confirm"}, "scan"),
        ({"scan": "own", "decision": "maybe"}, "decision"),
        ({"scan": "own"}, "decision"),
        ({"scan": "own", "decision": "confirm", "final_label": "UNSURE"}, "final_label"),
        ({"scan": "own", "decision": "confirm", "note": ["a", "list"]}, "note"),
    ],
)
def test_invalid_fields_are_named(doctor, predicted, body, field):
    body = {key: (predicted.pk if value == "own" else value) for key, value in body.items()}

    response = token_client(doctor).post(URL, body, format="json")

    assert response.status_code == 400
    assert field in error_of(response)["fields"]


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["radiographer", "admin", None])
def test_only_doctors_review(role, predicted):
    response = token_client(UserFactory(role=role)).post(
        URL, {"scan": predicted.pk, "decision": "confirm"}, format="json"
    )

    assert response.status_code == 403
    assert not Review.objects.exists()


@pytest.mark.django_db
def test_anonymous_gets_401(predicted):
    assert APIClient().post(URL, {"scan": predicted.pk, "decision": "confirm"}, format="json").status_code == 401


@pytest.mark.django_db
def test_listing_reviews_is_not_an_endpoint(doctor):
    response = token_client(doctor).get(URL)

    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
