"""Doctors don't collide: opening a scan claims it for reading, "next" skips scans others read,
the queue (page and API) shows who reads what, and simultaneous "next" presses get different scans."""

import re
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from radiology.actions import reading
from radiology.models import Scan
from tests.conftest import logged_in
from tests.factories import PredictionFactory, UserFactory
from tests.support.api import token_client


def waiting(probability, minutes_ago=1):
    return PredictionFactory(
        probability=probability, scan__uploaded_at=timezone.now() - timedelta(minutes=minutes_ago)
    ).scan


def doctor(name):
    return UserFactory(username=name, role="doctor")


def test_doctors_pressing_next_at_once_get_different_scans(transactional_db):
    scans = [waiting(0.9 - i / 20) for i in range(8)]
    doctors = [doctor(f"doctor-{i}") for i in range(8)]
    clients = []
    for user in doctors:
        client = Client()
        client.force_login(user)
        clients.append(client)
    barrier = threading.Barrier(len(clients))
    landed = [None] * len(clients)

    def press_next(index):
        try:
            barrier.wait(timeout=30)
            landed[index] = clients[index].get(reverse("review_next"))["Location"]
        finally:
            connection.close()

    threads = [threading.Thread(target=press_next, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    ids = [int(re.search(r"/review/(\d+)/", location).group(1)) for location in landed]
    assert sorted(ids) == sorted(scan.pk for scan in scans)  # eight doctors, eight different scans
    for user, scan_id in zip(doctors, ids):
        assert Scan.objects.get(pk=scan_id).read_by == user


@pytest.mark.django_db
def test_next_skips_a_scan_another_doctor_reads_until_the_claim_runs_out():
    top, second = waiting(0.9), waiting(0.5)
    alice, bob = logged_in(doctor("alice")), logged_in(doctor("bob"))
    alice.get(reverse("review", args=[top.pk]))

    assert bob.get(reverse("review_next"))["Location"] == reverse("review", args=[second.pk])

    Scan.objects.filter(pk=top.pk).update(read_until=timezone.now() - timedelta(seconds=1))  # Alice left
    carol = logged_in(doctor("carol"))
    assert carol.get(reverse("review_next"))["Location"] == reverse("review", args=[top.pk])


@pytest.mark.django_db
def test_the_page_says_who_else_reads_the_scan_and_the_queue_shows_it(settings):
    settings.REVIEW_CLAIM_MINUTES = 5
    scan = waiting(0.9)
    alice, bob = logged_in(doctor("alice")), logged_in(doctor("bob"))
    own_page = alice.get(reverse("review", args=[scan.pk])).content.decode()
    assert 'id="other-reader"' not in own_page
    assert 'data-heartbeat-seconds="100"' in own_page and "js/reading_claim.js" in own_page
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", own_page)  # no inline script (CSP)

    other_page = bob.get(reverse("review", args=[scan.pk])).content.decode()
    assert "alice is reading this scan" in other_page
    scan.refresh_from_db()
    assert scan.read_by.username == "alice"  # opening it did not take it from her

    queue = bob.get(reverse("review_queue")).content.decode()
    assert re.search(r"<td data-read-by>alice <span", queue)
    entry = token_client(UserFactory(username="api-doctor", role="doctor")).get("/api/v1/queue/").json()["results"][0]
    assert entry["read_by"] == "alice"
    assert entry["read_until"] is not None


@pytest.mark.django_db
def test_the_heartbeat_renews_the_claim_and_leaving_releases_it():
    scan = waiting(0.9)
    alice_user = doctor("alice")
    alice, bob = logged_in(alice_user), logged_in(doctor("bob"))
    alice.get(reverse("review", args=[scan.pk]))
    Scan.objects.filter(pk=scan.pk).update(read_until=timezone.now() + timedelta(seconds=10))

    beat = alice.post(reverse("reading_heartbeat", args=[scan.pk]))
    assert beat.status_code == 200 and beat.json()["reading"] is True
    scan.refresh_from_db()
    assert scan.read_until > timezone.now() + timedelta(minutes=4)

    refused = bob.post(reverse("reading_heartbeat", args=[scan.pk]))
    assert refused.status_code == 409 and refused.json() == {"reading": False, "read_by": "alice"}

    assert bob.post(reverse("reading_release", args=[scan.pk])).status_code == 204
    scan.refresh_from_db()
    assert scan.read_by == alice_user  # only one's own claim is released
    assert alice.post(reverse("reading_release", args=[scan.pk])).status_code == 204
    scan.refresh_from_db()
    assert scan.read_by is None and scan.read_until is None


@pytest.mark.django_db
def test_moving_on_releases_the_scan_left_and_a_decision_claims_the_next():
    top, second = waiting(0.9), waiting(0.6)
    waiting(0.3)
    alice_user = doctor("alice")
    alice = logged_in(alice_user)
    alice.get(reverse("review_next"))
    assert Scan.objects.get(pk=top.pk).read_by == alice_user

    response = alice.get(f"{reverse('review_next')}?after={top.pk}")

    assert response["Location"] == reverse("review", args=[second.pk])
    assert Scan.objects.get(pk=top.pk).read_by is None
    assert Scan.objects.get(pk=second.pk).read_by == alice_user
    decided = alice.post(reverse("review", args=[second.pk]), {"decision": "confirm"})
    assert decided["Location"] == reverse("review", args=[top.pk])  # the top one is free again
    assert Scan.objects.get(pk=top.pk).read_by == alice_user


@pytest.mark.django_db
def test_a_reviewed_scan_cannot_be_claimed():
    scan = waiting(0.9)
    Scan.objects.filter(pk=scan.pk).update(status=Scan.Status.REVIEWED)
    assert reading.claim_for_reading(doctor("alice"), scan.pk) is False
