"""Patients over the API: the contract, search, pagination, and who may do what."""

import pytest
from rest_framework.test import APIClient

from radiology.models import AuditEvent, Patient
from tests.factories import PatientFactory, UserFactory
from tests.support.api import error_of, token_client

URL = "/api/v1/patients/"
NEW_PATIENT = {"mrn": "MRN-API-1", "name": "Ada Lovelace", "birth_date": "1980-12-10", "sex": "F"}


@pytest.mark.django_db
def test_a_radiographer_creates_a_patient_and_gets_its_id(radiographer):
    response = token_client(radiographer).post(URL, NEW_PATIENT, format="json")

    assert response.status_code == 201
    body = response.json()
    patient = Patient.objects.get(pk=body["id"])
    assert (patient.mrn, patient.name, str(patient.birth_date), patient.sex) == (
        "MRN-API-1",
        "Ada Lovelace",
        "1980-12-10",
        "F",
    )
    assert {k: body[k] for k in NEW_PATIENT} == NEW_PATIENT
    assert AuditEvent.objects.filter(action="patient.created", object_id=str(patient.pk), actor=radiographer).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change, field",
    [
        ({"sex": "X"}, "sex"),
        ({"birth_date": "10/12/1980"}, "birth_date"),
        ({"birth_date": 19801210}, "birth_date"),
        ({"mrn": ""}, "mrn"),
        ({"name": None}, "name"),
        ({"mrn": "M" * 65}, "mrn"),
    ],
)
def test_invalid_patient_fields_are_named_in_a_400(radiographer, change, field):
    response = token_client(radiographer).post(URL, {**NEW_PATIENT, **change}, format="json")

    assert response.status_code == 400
    assert field in error_of(response)["fields"]
    assert not Patient.objects.exists()


@pytest.mark.django_db
def test_missing_fields_are_each_named(radiographer):
    response = token_client(radiographer).post(URL, {}, format="json")

    assert response.status_code == 400
    assert set(error_of(response)["fields"]) == {"mrn", "name", "birth_date", "sex"}


@pytest.mark.django_db
def test_a_second_patient_with_the_same_mrn_is_refused(radiographer):
    PatientFactory(mrn="MRN-API-1")

    response = token_client(radiographer).post(URL, NEW_PATIENT, format="json")

    assert response.status_code == 409
    assert error_of(response)["code"] == "conflict"
    assert error_of(response)["fields"]["mrn"] == ["A patient with this MRN already exists."]
    assert Patient.objects.count() == 1


@pytest.mark.django_db
def test_malformed_json_is_a_400_in_the_error_format(radiographer):
    response = token_client(radiographer).post(URL, "{not json", content_type="application/json")

    assert response.status_code == 400
    assert "JSON" in error_of(response)["message"]


@pytest.mark.django_db
def test_oversized_json_is_refused_before_parsing(radiographer, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = {**NEW_PATIENT, "name": "x" * 2000}

    response = token_client(radiographer).post(URL, body, format="json")

    assert response.status_code == 413
    assert "1,000 byte limit" in error_of(response)["message"]
    assert not Patient.objects.exists()


@pytest.mark.django_db
def test_search_by_name_or_mrn(doctor):
    PatientFactory(name="Grace Hopper", mrn="A-100")
    PatientFactory(name="Alan Turing", mrn="B-200")
    client = token_client(doctor)

    by_name = client.post(f"{URL}search/", {"query": "hopper"}, format="json").json()
    by_mrn = client.post(f"{URL}search/", {"query": "b-2"}, format="json").json()

    assert [p["name"] for p in by_name["results"]] == ["Grace Hopper"]
    assert [p["mrn"] for p in by_mrn["results"]] == ["B-200"]


@pytest.mark.django_db
def test_the_list_is_paginated(radiographer):
    PatientFactory.create_batch(3)
    client = token_client(radiographer)

    first = client.get(URL, {"page_size": 2}).json()
    second = client.get(first["next"]).json()

    assert first["count"] == 3 and len(first["results"]) == 2 and len(second["results"]) == 1
    assert second["next"] is None
    beyond = client.get(URL, {"page": 99})
    assert beyond.status_code == 404 and error_of(beyond)["code"] == "not_found"


@pytest.mark.django_db
def test_detail_and_unknown_patient(doctor, patient):
    client = token_client(doctor)

    assert client.get(f"{URL}{patient.pk}/").json()["mrn"] == patient.mrn
    missing = client.get(f"{URL}{patient.pk + 1000}/")
    assert missing.status_code == 404
    assert error_of(missing)["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "role, list_status, create_status",
    [
        ("radiographer", 200, 201),
        ("doctor", 200, 403),
        ("admin", 403, 403),
        (None, 403, 403),
    ],
)
def test_roles(role, list_status, create_status, patient):
    client = token_client(UserFactory(role=role))

    assert client.get(URL).status_code == list_status
    assert client.get(f"{URL}{patient.pk}/").status_code == list_status
    created = client.post(URL, NEW_PATIENT, format="json")
    assert created.status_code == create_status
    if create_status == 403:
        assert error_of(created)["message"] == "Your role does not allow this."


@pytest.mark.django_db
def test_anonymous_gets_401_everywhere(patient):
    client = APIClient()

    for response in (client.get(URL), client.get(f"{URL}{patient.pk}/"), client.post(URL, NEW_PATIENT, format="json")):
        assert response.status_code == 401
        assert error_of(response)["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.django_db
def test_a_session_works_as_well_as_a_token(radiographer_client, patient):
    assert radiographer_client.get(URL).json()["count"] == 1
