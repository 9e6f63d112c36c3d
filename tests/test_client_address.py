"""The real client address (issue 10, item 6): TRUSTED_PROXY_COUNT decides, in one place, what
the API rate limits, the login lockout and the audit trail take as the caller's address."""

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse
from rest_framework.test import APIClient

from radiology.client_address import client_address
from radiology.models import AuditEvent
from tests.conftest import PASSWORD

PROXY = "10.0.0.2"  # the TLS proxy in front of the web app (the connection's address)
ATTACKER = "203.0.113.66"
DOCTORS_WORKSTATION = "198.51.100.7"


def request_from(remote, forwarded=None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


@pytest.mark.parametrize(
    "proxies, forwarded, expected",
    [
        (0, "1.2.3.4", PROXY),  # no trusted proxy: the header is anyone's to write
        (0, None, PROXY),
        (1, None, PROXY),
        (1, f"1.2.3.4, {ATTACKER}", ATTACKER),  # the proxy appended the address it saw
        (2, f"1.2.3.4, {ATTACKER}, 10.0.0.9", ATTACKER),
        (3, ATTACKER, ATTACKER),  # fewer entries than proxies: the first
        (1, "not-an-address", PROXY),
        (1, "2001:DB8::1", "2001:db8::1"),
    ],
)
def test_client_address(settings, proxies, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    assert client_address(request_from(PROXY, forwarded)) == expected


def test_default_is_no_trusted_proxy():
    from django.conf import settings as live

    assert live.TRUSTED_PROXY_COUNT == 0 and live.REST_FRAMEWORK["NUM_PROXIES"] == 0


# --- the token exchange's rate limit ---------------------------------------------------------


@pytest.fixture
def anon_rate_of_three(monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "3/minute", "user": "1000/minute"})


def exchange(client, username, forwarded):
    """ "ok" when a token was given, else the refusal's status."""
    status = client.post(
        reverse("api-own-token"),
        {"username": username, "password": PASSWORD},
        format="json",
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=forwarded,
    ).status_code
    return "ok" if status in (200, 201) else status


@pytest.mark.django_db
def test_spoofed_forwarded_for_does_not_lift_the_token_exchange_limit(settings, anon_rate_of_three, radiographer):
    settings.TRUSTED_PROXY_COUNT = 0
    client = APIClient()
    statuses = [exchange(client, radiographer.username, f"192.0.2.{attempt}") for attempt in range(6)]
    assert statuses == ["ok", "ok", "ok", 429, 429, 429]


@pytest.mark.django_db
def test_behind_a_proxy_the_limit_counts_each_real_client(settings, anon_rate_of_three, radiographer):
    settings.TRUSTED_PROXY_COUNT = 1
    client = APIClient()
    # The attacker's own entries (left) change every time; the proxy's (right) is the truth.
    attacker = [exchange(client, radiographer.username, f"192.0.2.{n}, {ATTACKER}") for n in range(4)]
    assert attacker == ["ok", "ok", "ok", 429]
    assert exchange(client, radiographer.username, DOCTORS_WORKSTATION) == "ok"


# --- the login lockout -----------------------------------------------------------------------


def login_from(client, username, password, forwarded):
    return client.post(
        reverse("login"),
        {"username": username, "password": password},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=forwarded,
    )


def signed_in(client, user):
    return client.session.get("_auth_user_id") == str(user.pk)


@pytest.mark.django_db
def test_behind_a_proxy_an_attacker_cannot_lock_a_doctor_out_for_everyone(settings, doctor):
    settings.TRUSTED_PROXY_COUNT = 1
    attacker = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        login_from(attacker, doctor.username, "wrong password 123", f"192.0.2.{n}, {ATTACKER}")
    login_from(attacker, doctor.username, PASSWORD, f"192.0.2.99, {ATTACKER}")
    assert not signed_in(attacker, doctor)  # the attacker's address is locked out, whatever it claims

    workstation = Client()
    assert login_from(workstation, doctor.username, PASSWORD, DOCTORS_WORKSTATION).status_code == 302
    assert signed_in(workstation, doctor)


@pytest.mark.django_db
def test_without_a_trusted_proxy_a_spoofed_header_does_not_escape_the_lockout(settings, doctor):
    settings.TRUSTED_PROXY_COUNT = 0
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        login_from(client, doctor.username, "wrong password 123", f"192.0.2.{n}")
    login_from(client, doctor.username, PASSWORD, "192.0.2.200")
    assert not signed_in(client, doctor)


# --- the audit trail -------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("proxies, expected", [(0, PROXY), (1, DOCTORS_WORKSTATION)])
def test_audit_records_the_client_address(settings, doctor, proxies, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    client = Client()
    login_from(client, doctor.username, "wrong password 123", f"192.0.2.1, {DOCTORS_WORKSTATION}")
    login_from(client, doctor.username, PASSWORD, f"192.0.2.1, {DOCTORS_WORKSTATION}")
    assert AuditEvent.objects.get(action="auth.login_failed").after["ip"] == expected
    assert AuditEvent.objects.get(action="auth.login").after["ip"] == expected
