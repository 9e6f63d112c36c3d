"""API tokens: exchanged for a password, hashed at rest, shown once, named, expiring, listed and
revoked by their owner and by admins, revoked with the password or the account; the command prints one."""

import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from radiology.actions import tokens
from radiology.models import ApiToken, AuditEvent
from tests.conftest import PASSWORD
from tests.factories import UserFactory
from tests.support.api import error_of, token_client

EXCHANGE = "/api/v1/auth/token/"
OWN = "/api/v1/auth/tokens/"
ADMIN = "/api/v1/tokens/"


@pytest.fixture(autouse=True)
def fresh_rate_counts():
    # Rate-limit counts live in the process's cache: start clean, and leave none to other tests.
    cache.clear()
    yield
    cache.clear()


def bearer(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def works(key):
    return bearer(key).get(OWN).status_code == 200


@pytest.mark.django_db
def test_username_and_password_give_a_named_token_that_authenticates(radiographer, settings):
    response = APIClient().post(
        EXCHANGE, {"username": "radiographer1", "password": PASSWORD, "name": "ward laptop"}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["username"], body["name"]) == ("radiographer1", "ward laptop")
    assert bearer(body["token"]).get("/api/v1/patients/").status_code == 200
    expires = timezone.datetime.fromisoformat(body["expires_at"])
    assert abs(expires - timezone.now() - timedelta(days=settings.API_TOKEN_DAYS)) < timedelta(minutes=1)


@pytest.mark.django_db
def test_only_a_hash_of_the_key_is_stored(radiographer):
    key = tokens.issue_api_token(radiographer, radiographer).key

    stored = ApiToken.objects.get(user=radiographer)
    assert key not in str(list(ApiToken.objects.values()))
    assert stored.key_hash == tokens.key_hash(key) and stored.prefix == key[:8]


@pytest.mark.django_db
def test_the_same_name_replaces_the_token_and_other_names_live_on(radiographer):
    first = tokens.issue_api_token(radiographer, radiographer, name="pacs").key
    other = tokens.issue_api_token(radiographer, radiographer, name="script").key

    second = tokens.issue_api_token(radiographer, radiographer, name="pacs").key

    assert not works(first) and works(second) and works(other)
    tokens.issue_api_token(None, radiographer, name="fresh", replace=True)
    assert not works(second) and not works(other)


@pytest.mark.django_db
def test_an_expired_token_is_refused(doctor):
    key = tokens.issue_api_token(doctor, doctor).key
    ApiToken.objects.filter(user=doctor).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = bearer(key).get("/api/v1/queue/")

    assert response.status_code == 401
    assert "expired" in error_of(response)["message"]


@pytest.mark.django_db
def test_a_token_is_gone_after_a_password_change(doctor):
    key = tokens.issue_api_token(doctor, doctor).key
    assert works(key)

    doctor.set_password("another long passphrase")
    doctor.save()

    assert not works(key)
    assert not ApiToken.objects.filter(user=doctor).exists()
    assert AuditEvent.objects.filter(action="api_token.revoked", object_id=str(doctor.pk)).exists()


@pytest.mark.django_db
def test_a_token_is_gone_when_the_account_is_deactivated(integration_account):
    key = tokens.issue_api_token(None, integration_account).key

    integration_account.is_active = False
    integration_account.save()

    assert not ApiToken.objects.filter(user=integration_account).exists()
    integration_account.is_active = True
    integration_account.save()
    assert not works(key)


@pytest.mark.django_db
def test_other_saves_of_the_user_keep_the_tokens(doctor):
    key = tokens.issue_api_token(doctor, doctor).key

    doctor.first_name = "Ada"
    doctor.save()
    get_user_model().objects.get(pk=doctor.pk).save(update_fields=["last_login"])

    assert works(key)


@pytest.mark.django_db
def test_a_wrong_password_is_401_without_a_token(radiographer):
    response = APIClient().post(EXCHANGE, {"username": "radiographer1", "password": "wrong"}, format="json")

    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_failed"
    assert not ApiToken.objects.exists()


@pytest.mark.django_db
def test_missing_credentials_are_named(radiographer):
    response = APIClient().post(EXCHANGE, {"username": "radiographer1"}, format="json")

    assert response.status_code == 400
    assert set(error_of(response)["fields"]) == {"password"}


@pytest.mark.django_db
def test_the_exchange_is_a_sign_in_that_clears_earlier_failures(radiographer, settings):
    client = APIClient()
    almost = settings.AXES_FAILURE_LIMIT - 1

    def attempt(password):
        return client.post(EXCHANGE, {"username": "radiographer1", "password": password}, format="json").status_code

    assert [attempt("wrong") for _ in range(almost)] == [401] * almost
    assert attempt(PASSWORD) == 201
    assert [attempt("wrong") for _ in range(almost)] == [401] * almost  # not locked: the sign-in reset the count
    assert AuditEvent.objects.filter(action="auth.login", actor=radiographer).count() == 1


@pytest.mark.django_db
def test_repeated_failures_lock_the_username_out_even_with_the_right_password(radiographer, settings):
    client = APIClient()
    failures = [
        client.post(EXCHANGE, {"username": "radiographer1", "password": "wrong"}, format="json")
        for _ in range(settings.AXES_FAILURE_LIMIT)
    ]

    response = client.post(EXCHANGE, {"username": "radiographer1", "password": PASSWORD}, format="json")

    assert [f.status_code for f in failures] == [401] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
    assert response.status_code == 429
    assert "locked out" in error_of(response)["message"]
    assert int(response["Retry-After"]) == settings.AXES_COOLOFF_TIME * 3600
    assert not ApiToken.objects.exists()


# --- your own tokens ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_browser_session_lists_its_tokens_but_never_sees_a_key(doctor, doctor_client):
    key = tokens.issue_api_token(doctor, doctor, name="laptop").key

    listed = doctor_client.get(OWN)
    assert listed.status_code == 200
    assert [(t["name"], t["prefix"], t["expired"]) for t in listed.json()["results"]] == [("laptop", key[:8], False)]
    assert key not in listed.content.decode()
    assert doctor_client.get(EXCHANGE).status_code == 405  # there is no "show my token" any more
    assert AuditEvent.objects.filter(action="api_token.listed", actor=doctor).exists()


@pytest.mark.django_db
def test_a_key_is_shown_once_when_you_issue_yourself_a_token(doctor_client):
    created = doctor_client.post(OWN, {"name": "script"}, content_type="application/json")

    assert created.status_code == 201
    key = created.json()["token"]
    assert works(key)
    assert key not in doctor_client.get(OWN).content.decode()


@pytest.mark.django_db
def test_you_revoke_your_own_token_but_not_someone_elses(doctor, radiographer):
    mine = tokens.issue_api_token(doctor, doctor, name="mine")
    theirs = tokens.issue_api_token(radiographer, radiographer, name="theirs")
    client = token_client(doctor)

    assert client.delete(f"{OWN}{theirs.pk}/").status_code == 404
    assert client.delete(f"{OWN}{mine.pk}/").status_code == 204
    assert not works(mine.key) and works(theirs.key)
    assert AuditEvent.objects.filter(action="api_token.revoked", actor=doctor, object_id=str(doctor.pk)).exists()


@pytest.mark.django_db
def test_anonymous_cannot_list_tokens():
    assert APIClient().get(OWN).status_code == 401


# --- admins -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_admin_issues_a_token_for_an_integration_account(admin_user, integration_account):
    response = token_client(admin_user).post(ADMIN, {"user": integration_account.pk, "name": "pacs"}, format="json")

    assert response.status_code == 201
    key = response.json()["token"]
    assert bearer(key).get("/api/v1/scans/").status_code == 200
    event = AuditEvent.objects.get(action="api_token.issued", object_id=str(integration_account.pk), actor=admin_user)
    assert key not in str(event.before) + str(event.after) + event.object_id


@pytest.mark.django_db
def test_an_admin_lists_everyones_tokens_without_their_keys(admin_user, doctor):
    key = tokens.issue_api_token(doctor, doctor, name="doctor's").key

    response = token_client(admin_user).get(ADMIN)

    assert {(t["username"], t["name"]) for t in response.json()["results"]} >= {("doctor1", "doctor's")}
    assert key not in response.content.decode()
    assert AuditEvent.objects.filter(action="api_token.listed", actor=admin_user, after={"scope": "all"}).exists()


@pytest.mark.django_db
def test_an_admin_revokes_a_token(admin_user, doctor):
    token = tokens.issue_api_token(doctor, doctor)
    admin = token_client(admin_user)

    response = admin.delete(f"{ADMIN}{token.pk}/")

    assert response.status_code == 204
    assert not works(token.key)
    assert AuditEvent.objects.filter(action="api_token.revoked", object_id=str(doctor.pk), actor=admin_user).exists()
    assert admin.delete(f"{ADMIN}{token.pk}/").status_code == 404


@pytest.mark.django_db
def test_issuing_for_an_unknown_user_names_the_field(admin_user):
    response = token_client(admin_user).post(ADMIN, {"user": 999999}, format="json")

    assert response.status_code == 404
    assert "user" in error_of(response)["fields"]


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["doctor", "radiographer", "integration", None])
def test_only_admins_manage_everyones_tokens(role, admin_user):
    client = token_client(UserFactory(role=role))
    admin_token = tokens.issue_api_token(admin_user, admin_user)

    assert client.get(ADMIN).status_code == 403
    assert client.post(ADMIN, {"user": admin_user.pk}, format="json").status_code == 403
    assert client.delete(f"{ADMIN}{admin_token.pk}/").status_code == 403
    assert works(admin_token.key)


@pytest.mark.django_db
def test_anonymous_gets_401_on_token_management(doctor):
    assert APIClient().get(ADMIN).status_code == 401
    assert APIClient().post(ADMIN, {"user": doctor.pk}, format="json").status_code == 401


# --- the command --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_command_prints_a_new_working_token(doctor):
    out = io.StringIO()
    call_command("issue_token", "doctor1", stdout=out)
    key = out.getvalue().strip()

    assert works(key)
    again = io.StringIO()
    call_command("issue_token", "doctor1", "--name", "second", stdout=again)
    assert works(again.getvalue().strip()) and works(key)
    replaced = io.StringIO()
    call_command("issue_token", "doctor1", "--replace", stdout=replaced)
    assert works(replaced.getvalue().strip()) and not works(key)


@pytest.mark.django_db
def test_the_command_refuses_an_unknown_user():
    with pytest.raises(CommandError, match="No user"):
        call_command("issue_token", "nobody-here")


# --- rate limits --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_anonymous_rate_limit_applies_to_the_token_exchange(radiographer, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "2/minute", "user": "1000/minute"})
    client = APIClient()
    statuses = [
        client.post(EXCHANGE, {"username": "radiographer1", "password": PASSWORD}, format="json").status_code
        for _ in range(3)
    ]

    assert statuses == [201, 201, 429]
    response = client.post(EXCHANGE, {"username": "radiographer1", "password": PASSWORD}, format="json")
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
