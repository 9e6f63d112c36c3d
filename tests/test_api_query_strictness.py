"""The API refuses what its schema forbids: empty or repeated query parameters, a page size out
of range or not a number, a number where a string is due."""

import pytest

from tests.factories import PatientFactory, PredictionFactory
from tests.support.api import error_of, token_client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("page_size", ["null", "0", "201", "2.5", ""])
def test_a_page_size_out_of_range_or_not_a_number_is_refused(doctor, page_size):
    response = token_client(doctor).get(f"/api/v1/queue/?page_size={page_size}")

    assert response.status_code == 400
    assert "page_size" in error_of(response)["fields"]


def test_a_page_size_in_range_is_used_and_given_twice_is_refused(doctor):
    PredictionFactory(), PredictionFactory()
    client = token_client(doctor)
    assert len(client.get("/api/v1/queue/?page_size=1").json()["results"]) == 1
    assert client.get("/api/v1/queue/?page_size=1&page_size=2").status_code == 400


@pytest.mark.parametrize("query", ["uploaded_before=", "status=", "patient=", "status=queued&status=failed"])
def test_empty_or_repeated_filters_are_refused_not_ignored(radiographer, query):
    response = token_client(radiographer).get(f"/api/v1/scans/?{query}")

    assert response.status_code == 400
    assert set(error_of(response)["fields"]) == {query.split("=")[0]}


def test_metrics_refuse_an_empty_date(admin_user):
    response = token_client(admin_user).get("/api/v1/metrics/?start=")
    assert response.status_code == 400 and "start" in error_of(response)["fields"]


def test_numbers_are_not_taken_for_strings(radiographer):
    PatientFactory(mrn="0")
    client = token_client(radiographer)

    search = client.post("/api/v1/patients/search/", {"query": 0}, format="json")
    created = client.post(
        "/api/v1/patients/", {"mrn": 123, "name": "Jo", "birth_date": "2020-01-01", "sex": "F"}, format="json"
    )

    assert search.status_code == 400 and "query" in error_of(search)["fields"]
    assert created.status_code == 400 and "mrn" in error_of(created)["fields"]


def test_the_schema_states_the_page_size_range(doctor):
    schema = token_client(doctor).get("/api/schema/?format=json").json()
    (page_size,) = [p for p in schema["paths"]["/api/v1/queue/"]["get"]["parameters"] if p["name"] == "page_size"]
    assert (page_size["schema"]["minimum"], page_size["schema"]["maximum"]) == (1, 200)


def test_a_parameter_name_with_a_nul_is_still_audited(doctor):
    from radiology.models import AuditEvent

    response = token_client(doctor).get("/api/v1/patients/?a%00b=1")

    assert response.status_code == 200
    assert AuditEvent.objects.filter(action="patient_data.read").latest("pk").after["params"] == ["ab"]
