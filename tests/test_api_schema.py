"""The OpenAPI schema: served to authenticated users only, valid, documenting the contract; and
schemathesis fuzzing every operation against it (no 5xx, responses as documented)."""

import pytest
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from rest_framework.test import APIClient
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from radiology.actions import tokens
from tests.factories import PredictionFactory, UserFactory
from tests.support.api import error_of, token_client


@pytest.mark.django_db
def test_schema_and_docs_need_authentication(client):
    assert APIClient().get("/api/schema/").status_code == 401
    assert error_of(APIClient().get("/api/schema/"))["code"] == "not_authenticated"
    assert client.get("/api/docs/").status_code == 302


@pytest.mark.django_db
def test_the_docs_page_loads_swagger_from_this_server(doctor_client):
    page = doctor_client.get("/api/docs/").content.decode()

    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "cdn" not in page.lower() and "https://" not in page


@pytest.mark.django_db
def test_the_schema_documents_the_contract(doctor):
    schema = token_client(doctor).get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    components = schema["components"]["schemas"]

    assert schema["openapi"].startswith("3.")
    for path, method in [
        ("/api/v1/patients/", "post"),
        ("/api/v1/scans/", "post"),
        ("/api/v1/scans/", "get"),
        ("/api/v1/scans/{id}/", "get"),
        ("/api/v1/queue/", "get"),
        ("/api/v1/reviews/", "post"),
        ("/api/v1/metrics/", "get"),
        ("/api/v1/model-versions/{id}/activate/", "post"),
        ("/api/v1/auth/token/", "post"),
        ("/api/v1/tokens/", "post"),
    ]:
        assert method in paths[path], (method, path)
    assert set(components["PatientRequest"]["required"]) == {"mrn", "name", "birth_date", "sex"}
    assert components["SexEnum"]["enum"] == ["M", "F", "O"]
    upload = paths["/api/v1/scans/"]["post"]
    assert components["ScanUploadRequest"]["properties"]["image"]["format"] == "binary"
    assert set(upload["responses"]) >= {"200", "201", "400", "401", "403"}
    assert {"label", "probability", "threshold", "model_version", "heatmap_url"} <= set(
        components["Prediction"]["properties"]
    )
    assert {"n", "accuracy", "sensitivity", "specificity", "precision", "f1", "auc", "confusion_matrix"} <= set(
        components["Metrics"]["required"]
    )
    assert {p["name"] for p in paths["/api/v1/scans/"]["get"]["parameters"]} >= {
        "patient",
        "status",
        "uploaded_after",
        "uploaded_before",
        "page",
    }
    assert "tokenAuth" in schema["components"]["securitySchemes"]
    # What the API refuses for state or existence is documented with its own status, not as a 400.
    assert "404" in paths["/api/v1/reviews/"]["post"]["responses"]
    for path, method in [
        ("/api/v1/patients/", "post"),
        ("/api/v1/reviews/", "post"),
        ("/api/v1/scans/{id}/requeue/", "post"),
        ("/api/v1/model-versions/{id}/activate/", "post"),
        ("/api/v1/model-versions/{id}/challenger/", "post"),
        ("/api/v1/model-versions/{id}/challenger/", "delete"),
        ("/api/v1/model-versions/{id}/promote/", "post"),
    ]:
        assert "409" in paths[path][method]["responses"], (method, path)
    # Rules the schema states rather than leaves to a 400: no NUL in text, promotion confirmed.
    assert components["PatientSearchRequest"]["properties"]["query"]["pattern"] == "^[^\\u0000]*$"
    assert components["PatientRequest"]["properties"]["mrn"]["pattern"] == "^[^\\u0000]*$"
    confirm = components["PromotionRequest"]["properties"]["confirm"]["allOf"][0]["$ref"].rsplit("/", 1)[-1]
    assert components[confirm]["enum"] == [True]
    assert "confirm" in components["PromotionRequest"]["required"]


@pytest.mark.django_db
def test_the_schema_generates_without_warnings(tmp_path):
    # A warning means drf-spectacular guessed at some part of the API: the schema would be inaccurate.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))

    assert "/api/v1/scans/{id}/" in (tmp_path / "schema.yaml").read_text()


@pytest.fixture
def superuser(db):
    # Every operation's success path is reachable: a superuser holds every permission.
    return UserFactory(username="fuzzer", is_superuser=True, is_staff=True)


@pytest.fixture
def wsgi_app_in_test_transaction(settings):
    """The real WSGI application, called in-process. Like Django's test client, it must not close
    the database connection after each request: the test's transaction lives on it."""
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]  # the host schemathesis sends
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(superuser, wsgi_app_in_test_transaction, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "100000/minute", "user": "100000/minute"})
    PredictionFactory()  # something to find, so that some generated ids hit real records
    headers = {"Authorization": f"Token {tokens.issue_api_token(superuser, superuser).key}"}
    return schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app_in_test_transaction, headers=headers)


# Examples per operation and generation mode: bounded so the whole run stays well under a minute.
FUZZ_SETTINGS = settings(
    max_examples=10,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_every_operation_answers_as_documented_and_never_with_a_server_error(api_schema, superuser):
    # schemathesis' own pytest integration (from_fixture) does not run under pytest 9, so each
    # operation's strategy drives a Hypothesis test here; every failing operation is reported.
    failures = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @FUZZ_SETTINGS
            @given(case=operation.as_strategy(generation_mode=mode))
            def answers_as_documented(case):
                # The fuzzer may revoke or replace the superuser's token (an operation too): ask each time.
                token = tokens.issue_api_token(superuser, superuser).key
                case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)

            try:
                answers_as_documented()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # an operation without any input has no invalid one
            except (Exception, BaseExceptionGroup) as failure:  # schemathesis' FailureGroup describes the request
                failures[f"{operation.label} ({mode.value})"] = str(failure)
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
