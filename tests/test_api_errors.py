"""One error format everywhere under /api/, and never a stack trace."""

import pytest
from rest_framework.test import APIClient

from tests.factories import PatientFactory
from tests.support.api import error_of, token_client


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/nothing-here/", "/api/v1/patients", "/api/", "/api/v2/patients/"])
def test_an_unknown_endpoint_is_a_json_404(admin_user, path):
    response = token_client(admin_user).get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert error_of(response)["code"] == "not_found"


@pytest.mark.django_db
def test_a_method_the_endpoint_does_not_have_is_405(radiographer):
    patient = PatientFactory()
    client = token_client(radiographer)

    for response in (
        client.delete(f"/api/v1/patients/{patient.pk}/"),
        client.put("/api/v1/patients/", {}, format="json"),
        client.options("/api/v1/patients/"),
    ):
        assert response.status_code == 405
        assert error_of(response)["code"] == "method_not_allowed"


@pytest.mark.django_db
def test_an_invalid_token_is_401(radiographer):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")

    response = client.get("/api/v1/patients/")

    assert response.status_code == 401
    assert error_of(response) == {
        "status": 401,
        "code": "authentication_failed",
        "message": "Invalid or expired token.",
    }


@pytest.mark.django_db
def test_an_unexpected_error_is_a_500_without_details(admin_user, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internals at /srv/pneumoscan/db.py line 42")

    monkeypatch.setattr("radiology.api.views.dashboard_metrics", broken)

    response = token_client(admin_user).get("/api/v1/metrics/")

    assert response.status_code == 500
    assert error_of(response) == {
        "status": 500,
        "code": "server_error",
        "message": "An internal error occurred; it has been logged.",
    }
    assert "secret" not in response.content.decode() and "Traceback" not in response.content.decode()
    assert "secret internals" in caplog.text  # the server log keeps what the client must not see


@pytest.mark.django_db
def test_html_is_never_answered_not_even_when_asked_for(radiographer):
    response = token_client(radiographer).get("/api/v1/patients/", HTTP_ACCEPT="text/html")

    assert response.status_code == 406
    assert error_of(response)["code"] == "not_acceptable"


@pytest.mark.django_db
def test_a_browser_without_login_is_sent_from_the_docs_to_the_login_page(client):
    response = client.get("/api/docs/")

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
