"""Patient identity stays out of URLs, logs and cookies (issue 10, item 8): the search is sent by
POST (pages and API), and flash messages name no patient and are kept on the server."""

import json
import logging

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from radiology.models import Patient
from tests.factories import PatientFactory, PredictionFactory
from tests.support.api import error_of, token_client
from tests.support.images import png_bytes

SEARCH_URL = "/api/v1/patients/search/"


@pytest.fixture
def patients(db):
    for n in range(27):
        PatientFactory(name=f"Person {n:02d}", mrn=f"P{n:03d}")
    return PatientFactory(name="Zed Unique", mrn="Z-SECRET-1")


def test_page_search_is_posted_and_its_text_is_in_no_url(radiographer_client, patients, caplog):
    caplog.set_level(logging.DEBUG)
    page = radiographer_client.get(reverse("patient_list")).content.decode()
    assert 'method="post" action="/patients/" class="inline-form" role="search"' in page

    response = radiographer_client.post(reverse("patient_list"), {"q": "z-secret"})
    assert response.status_code == 302 and response["Location"] == reverse("patient_list")
    results = radiographer_client.get(response["Location"])
    assert b"Zed Unique" in results.content and b"Person 01" not in results.content
    assert "z-secret" not in results.wsgi_request.get_full_path()
    assert "z-secret" not in caplog.text.lower()


def test_search_results_page_without_the_text_in_their_links(radiographer_client, patients):
    radiographer_client.post(reverse("patient_list"), {"q": "person"})
    first = radiographer_client.get(reverse("patient_list")).content.decode()
    assert "Page 1 of 2" in first and 'href="?page=2"' in first and "Zed Unique" not in first
    second = radiographer_client.get(reverse("patient_list"), {"page": 2}).content.decode()
    assert "Person 26" in second and "Zed Unique" not in second


def test_search_is_cleared(radiographer_client, patients):
    radiographer_client.post(reverse("patient_list"), {"q": "unique"})
    radiographer_client.post(reverse("patient_list"), {"q": "unique", "clear": "1"})
    assert b"Person 01" in radiographer_client.get(reverse("patient_list")).content


def test_a_search_in_the_url_is_not_honoured(radiographer_client, patients):
    page = radiographer_client.get(reverse("patient_list"), {"q": "unique"}).content.decode()
    assert "Person 01" in page  # the query string is ignored: nobody is taught to put names there


def test_api_search_is_posted_and_paginated(doctor, patients):
    client = token_client(doctor)
    found = client.post(SEARCH_URL, {"query": "z-secret"}, format="json")
    assert found.status_code == 200
    assert [p["name"] for p in found.json()["results"]] == ["Zed Unique"]
    first = client.post(f"{SEARCH_URL}?page_size=20", {"query": "person"}, format="json").json()
    assert first["count"] == 27 and len(first["results"]) == 20
    second = client.post(first["next"], {"query": "person"}, format="json").json()
    assert len(second["results"]) == 7


def test_api_search_in_the_url_is_refused_with_the_way_to_search(doctor, patients):
    response = token_client(doctor).get("/api/v1/patients/", {"search": "z-secret"})
    assert response.status_code == 400
    assert "POST /api/v1/patients/search/" in error_of(response)["fields"]["search"][0]


@pytest.mark.parametrize("body", [{}, {"query": ""}, {"query": "x" * 201}])
def test_api_search_needs_a_query(doctor, body):
    assert token_client(doctor).post(SEARCH_URL, body, format="json").status_code == 400


def test_radiographer_may_search_admin_may_not(radiographer, admin_user, patients):
    assert token_client(radiographer).post(SEARCH_URL, {"query": "zed"}, format="json").status_code == 200
    assert token_client(admin_user).post(SEARCH_URL, {"query": "zed"}, format="json").status_code == 403


# --- flash messages --------------------------------------------------------------------------


def stored_messages(client):
    return json.dumps(client.session.get("_messages", ""))


def assert_no_identity(client, response, patient):
    assert "messages" not in response.cookies  # kept in the session, on the server
    text = stored_messages(client)
    assert text and patient.name not in text and patient.mrn not in text


def test_upload_messages_name_no_patient(radiographer_client):
    response = radiographer_client.post(
        reverse("upload"),
        {
            "mrn": "NEW-SECRET-9",
            "name": "Ada Secretname",
            "birth_date": "2019-05-01",
            "sex": "F",
            "files": [SimpleUploadedFile("chest.png", png_bytes(seed=3), content_type="image/png")],
        },
    )
    assert response.status_code == 302
    assert_no_identity(radiographer_client, response, Patient.objects.get(mrn="NEW-SECRET-9"))


def test_patient_creation_message_names_no_patient(radiographer_client):
    response = radiographer_client.post(
        reverse("patient_create"),
        {"mrn": "C-SECRET-1", "name": "Cy Secretname", "birth_date": "2018-02-03", "sex": "M"},
    )
    assert response.status_code == 302
    assert_no_identity(radiographer_client, response, Patient.objects.get(mrn="C-SECRET-1"))


def test_review_message_names_no_patient(doctor_client):
    scan = PredictionFactory(scan__patient__name="Rex Secretname", scan__patient__mrn="R-SECRET-1").scan
    response = doctor_client.post(reverse("review", args=[scan.pk]), {"decision": "confirm", "note": ""})
    assert response.status_code == 302
    assert_no_identity(doctor_client, response, scan.patient)
