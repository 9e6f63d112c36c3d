"""Browser sessions end on their own (issue 10, item 3): after SESSION_IDLE_MINUTES without
activity and SESSION_MAX_HOURS after signing in; background polling is not activity; the page
carries the warning's script (a static file) and the endpoints it asks."""

import re

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django.urls import reverse

from radiology import session_limits
from radiology.models import AuditEvent
from tests.conftest import PASSWORD

MINUTE, HOUR = 60, 3600
START = 1_800_000_000.0


class Clock:
    def __init__(self):
        self.at = START

    def __call__(self):
        return self.at

    def advance(self, seconds):
        self.at += seconds


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(session_limits, "now", clock)
    return clock


@pytest.fixture
def limits(settings):
    settings.SESSION_IDLE_MINUTES = 15
    settings.SESSION_MAX_HOURS = 12


@pytest.fixture
def signed_in(clock, limits, radiographer):
    client = Client()
    response = client.post(reverse("login"), {"username": radiographer.username, "password": PASSWORD})
    assert response.status_code == 302
    return client


def is_signed_in(client):
    return SESSION_KEY in client.session


def open_page(client):
    return client.get(reverse("patient_list"))


def test_defaults():
    from django.conf import settings as live

    assert (live.SESSION_IDLE_MINUTES, live.SESSION_MAX_HOURS) == (15, 12)
    assert live.SESSION_COOKIE_AGE == 12 * HOUR
    assert "radiology.session_limits.SessionLimitMiddleware" in live.MIDDLEWARE


@pytest.mark.django_db
def test_idle_session_is_signed_out(signed_in, clock):
    clock.advance(14 * MINUTE)
    assert open_page(signed_in).status_code == 200
    clock.advance(15 * MINUTE + 1)  # 15 minutes after the last page
    response = open_page(signed_in)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert not is_signed_in(signed_in)
    assert AuditEvent.objects.filter(action="auth.logout").count() == 1
    login_page = signed_in.get(response["Location"])
    assert "signed out after 15 minutes without activity" in login_page.content.decode()


@pytest.mark.django_db
def test_activity_keeps_the_session_until_the_absolute_limit(signed_in, clock):
    for _ in range(12 * 6 - 1):  # a page every 10 minutes for almost 12 hours
        clock.advance(10 * MINUTE)
        assert open_page(signed_in).status_code == 200
    clock.advance(10 * MINUTE + 1)
    assert open_page(signed_in).status_code == 302
    assert not is_signed_in(signed_in)
    assert "at most 12 hours" in signed_in.get(reverse("login")).content.decode()


@pytest.mark.django_db
def test_background_polling_is_not_activity(signed_in, clock):
    for _ in range(3):  # the scan status page polls every few seconds; here, every 4 minutes
        clock.advance(4 * MINUTE)
        assert signed_in.get(reverse("scan_status_json"), {"ids": "1"}).status_code == 200
        assert signed_in.get(reverse("session_status")).json()["signed_in"]
    clock.advance(3 * MINUTE + 1)  # 15 minutes after signing in, 3 after the last poll
    assert open_page(signed_in).status_code == 302


@pytest.mark.django_db
def test_status_tells_the_page_what_is_left(signed_in, clock):
    clock.advance(14 * MINUTE)
    assert signed_in.get(reverse("session_status")).json() == {
        "signed_in": True,
        "idle_seconds_left": 60,
        "session_seconds_left": 12 * HOUR - 14 * MINUTE,
    }
    clock.advance(MINUTE)
    answer = signed_in.get(reverse("session_status"))
    assert answer.status_code == 401 and answer.json() == {"signed_in": False}
    assert not is_signed_in(signed_in)


@pytest.mark.django_db
def test_staying_signed_in_counts_as_activity(signed_in, clock):
    clock.advance(14 * MINUTE + 30)
    answer = signed_in.post(reverse("session_keep_alive"))
    assert answer.status_code == 200 and answer.json()["idle_seconds_left"] == 15 * MINUTE
    clock.advance(14 * MINUTE)
    assert open_page(signed_in).status_code == 200


@pytest.mark.django_db
def test_keep_alive_cannot_revive_an_ended_session(signed_in, clock):
    clock.advance(16 * MINUTE)
    answer = signed_in.post(reverse("session_keep_alive"))
    assert answer.status_code == 401 and answer.json() == {"signed_in": False}


@pytest.mark.django_db
def test_short_idle_limit_as_measured_in_the_issue(signed_in, clock, settings):
    """`SESSION_IDLE_MINUTES=1`: a session idle for 75 s is signed out."""
    settings.SESSION_IDLE_MINUTES = 1
    clock.advance(75)
    assert open_page(signed_in).status_code == 302 and not is_signed_in(signed_in)


@pytest.mark.django_db
def test_page_loads_the_warning_script_from_a_static_file(signed_in):
    page = open_page(signed_in).content.decode()
    assert re.search(r'<script src="/static/js/session\.js"></script>', page)
    assert 'data-warn-seconds="60"' in page and 'id="session-stay"' in page
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)  # no inline script


@pytest.mark.django_db
def test_token_api_calls_carry_no_session_and_are_not_limited(clock, limits, radiographer):
    from tests.support.api import token_client

    api = token_client(radiographer)
    assert api.get("/api/v1/patients/").status_code == 200
    clock.advance(13 * HOUR)
    assert api.get("/api/v1/patients/").status_code == 200
