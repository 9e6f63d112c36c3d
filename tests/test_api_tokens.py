"""API tokens: exchange a password for one, see your own, admins issue and revoke, the command prints one."""

import io

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from radiology.models import AuditEvent
from tests.conftest import PASSWORD
from tests.factories import UserFactory
from tests.support.api import error_of, token_client

OWN = "/api/v1/auth/token/"
ADMIN = "/api/v1/tokens/"


@pytest.fixture(autouse=True)
def fresh_rate_counts():
    # Rate-limit counts live in the process's cache: start clean, and leave none to other tests.
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db
def test_username_and_password_give_a_token_that_authenticates(radiographer):
    response = APIClient().post(OWN, {"username": "radiographer1", "password": PASSWORD}, format="json")

    assert response.status_code == 200
    key = response.json()["token"]
    assert response.json()["username"] == "radiographer1"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/patients/").status_code == 200
    again = APIClient().post(OWN, {"username": "radiographer1", "password": PASSWORD}, format="json")
    assert again.json()["token"] == key


@pytest.mark.django_db
def test_the_exchange_is_a_sign_in_that_clears_earlier_failures(radiographer, settings):
    client = APIClient()
    almost = settings.AXES_FAILURE_LIMIT - 1

    def attempt(password):
        return client.post(OWN, {"username": "radiographer1", "password": password}, format="json").status_code

    assert [attempt("wrong") for _ in range(almost)] == [401] * almost
    assert attempt(PASSWORD) == 200
    assert [attempt("wrong") for _ in range(almost)] == [401] * almost  # not locked: the sign-in reset the count
    assert AuditEvent.objects.filter(action="auth.login", actor=radiographer).count() == 1


@pytest.mark.django_db
def test_a_wrong_password_is_401_without_a_token(radiographer):
    response = APIClient().post(OWN, {"username": "radiographer1", "password": "wrong"}, format="json")

    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_failed"
    assert not Token.objects.exists()


@pytest.mark.django_db
def test_missing_credentials_are_named(radiographer):
    response = APIClient().post(OWN, {"username": "radiographer1"}, format="json")

    assert response.status_code == 400
    assert set(error_of(response)["fields"]) == {"password"}


@pytest.mark.django_db
def test_repeated_failures_lock_the_username_out_even_with_the_right_password(radiographer, settings):
    client = APIClient()
    failures = [
        client.post(OWN, {"username": "radiographer1", "password": "wrong"}, format="json")
        for _ in range(settings.AXES_FAILURE_LIMIT)
    ]

    response = client.post(OWN, {"username": "radiographer1", "password": PASSWORD}, format="json")

    assert [f.status_code for f in failures] == [401] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
    assert response.status_code == 429
    assert "locked out" in error_of(response)["message"]
    assert int(response["Retry-After"]) == settings.AXES_COOLOFF_TIME * 3600
    assert not Token.objects.exists()


@pytest.mark.django_db
def test_a_user_sees_their_own_token_by_token_or_session(doctor, doctor_client):
    assert doctor_client.get(OWN).status_code == 404
    client = token_client(doctor)

    by_token = client.get(OWN).json()
    by_session = doctor_client.get(OWN).json()

    assert by_token == by_session
    assert by_token["token"] == Token.objects.get(user=doctor).key


@pytest.mark.django_db
def test_anonymous_cannot_see_a_token():
    response = APIClient().get(OWN)

    assert response.status_code == 401


@pytest.mark.django_db
def test_an_admin_issues_a_new_token_and_the_old_one_stops_working(admin_user, integration_account):
    old_client = token_client(integration_account)
    admin = token_client(admin_user)

    response = admin.post(ADMIN, {"user": integration_account.pk}, format="json")

    assert response.status_code == 201
    new_key = response.json()["token"]
    assert Token.objects.get(user=integration_account).key == new_key
    assert old_client.get("/api/v1/scans/").status_code == 401
    event = AuditEvent.objects.filter(
        action="api_token.issued", object_id=str(integration_account.pk), actor=admin_user
    ).get()
    assert new_key not in str(event.before) + str(event.after) + event.object_id


@pytest.mark.django_db
def test_an_admin_lists_token_holders_without_their_keys(admin_user, doctor):
    key = token_client(doctor) and Token.objects.get(user=doctor).key

    response = token_client(admin_user).get(ADMIN)

    assert {t["username"] for t in response.json()["results"]} == {"admin1", "doctor1"}
    assert key not in response.content.decode()


@pytest.mark.django_db
def test_an_admin_revokes_a_token(admin_user, doctor):
    doctor_api = token_client(doctor)
    admin = token_client(admin_user)

    response = admin.delete(f"{ADMIN}{doctor.pk}/")

    assert response.status_code == 204
    assert doctor_api.get("/api/v1/queue/").status_code == 401
    assert AuditEvent.objects.filter(action="api_token.revoked", object_id=str(doctor.pk), actor=admin_user).exists()
    assert admin.delete(f"{ADMIN}{doctor.pk}/").status_code == 404


@pytest.mark.django_db
def test_issuing_for_an_unknown_user_names_the_field(admin_user):
    response = token_client(admin_user).post(ADMIN, {"user": 999999}, format="json")

    assert response.status_code == 400
    assert "user" in error_of(response)["fields"]


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["doctor", "radiographer", None])
def test_only_admins_manage_tokens(role, admin_user):
    client = token_client(UserFactory(role=role))
    token_client(admin_user)

    assert client.get(ADMIN).status_code == 403
    assert client.post(ADMIN, {"user": admin_user.pk}, format="json").status_code == 403
    assert client.delete(f"{ADMIN}{admin_user.pk}/").status_code == 403
    assert Token.objects.filter(user=admin_user).exists()


@pytest.mark.django_db
def test_anonymous_gets_401_on_token_management(doctor):
    assert APIClient().get(ADMIN).status_code == 401
    assert APIClient().post(ADMIN, {"user": doctor.pk}, format="json").status_code == 401


@pytest.mark.django_db
def test_the_command_prints_the_users_token(doctor):
    out = io.StringIO()
    call_command("issue_token", "doctor1", stdout=out)
    key = out.getvalue().strip()

    assert key == Token.objects.get(user=doctor).key
    again = io.StringIO()
    call_command("issue_token", "doctor1", stdout=again)
    assert again.getvalue().strip() == key
    replaced = io.StringIO()
    call_command("issue_token", "doctor1", "--replace", stdout=replaced)
    assert replaced.getvalue().strip() not in ("", key)


@pytest.mark.django_db
def test_the_command_refuses_an_unknown_user():
    with pytest.raises(CommandError, match="No user"):
        call_command("issue_token", "nobody-here")


@pytest.mark.django_db
def test_the_anonymous_rate_limit_applies_to_the_token_exchange(radiographer, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "2/minute", "user": "1000/minute"})
    client = APIClient()
    statuses = [
        client.post(OWN, {"username": "radiographer1", "password": PASSWORD}, format="json").status_code
        for _ in range(3)
    ]

    assert statuses == [200, 200, 429]
    response = client.post(OWN, {"username": "radiographer1", "password": PASSWORD}, format="json")
    assert error_of(response)["code"] == "throttled"
    assert int(response["Retry-After"]) > 0


@pytest.mark.django_db
def test_the_per_user_rate_limit(doctor, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "1000/minute", "user": "3/minute"})
    client = token_client(doctor)
    statuses = [client.get("/api/v1/queue/").status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
    assert token_client(UserFactory(role="doctor")).get("/api/v1/queue/").status_code == 200  # counted per user
