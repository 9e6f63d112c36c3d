"""The doctor's queue page: most likely pneumonia first, overdue scans on top, waits shown, paginated."""

import re
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from tests.factories import PredictionFactory, ScanFactory


def predicted(probability, waited_minutes):
    return PredictionFactory(
        probability=probability, scan__uploaded_at=timezone.now() - timedelta(minutes=waited_minutes)
    ).scan


def queue_ids(response):
    table = response.content.decode().split('id="review-queue"')[1].split("</table>")[0]
    return [int(i) for i in re.findall(r'<tr data-scan-id="(\d+)"', table)]


def test_most_likely_first_but_overdue_scans_on_top(doctor_client):
    likely = predicted(0.95, waited_minutes=5)
    unlikely = predicted(0.40, waited_minutes=10)
    overdue = predicted(0.10, waited_minutes=90)
    most_overdue = predicted(0.70, waited_minutes=120)
    PredictionFactory(probability=0.99, scan__status="reviewed")  # done: not in the queue
    ScanFactory(status="queued")  # not predicted yet: not in the queue

    response = doctor_client.get(reverse("review_queue"))
    assert queue_ids(response) == [most_overdue.pk, overdue.pk, likely.pk, unlikely.pk]
    page = response.content.decode()
    assert page.count("over 60 min</span>") == 2
    assert "2\xa0hours" in page and "1\xa0hour, 30\xa0minutes" in page and "5\xa0minutes" in page
    assert "Decision aid trained on pediatric chest X-rays; the doctor decides." in page


def test_the_wait_cap_is_configurable(doctor_client, settings):
    settings.TRIAGE_MAX_WAIT_MINUTES = 200
    likely = predicted(0.95, waited_minutes=5)
    unlikely = predicted(0.40, waited_minutes=10)
    old = predicted(0.10, waited_minutes=90)
    older = predicted(0.70, waited_minutes=120)
    response = doctor_client.get(reverse("review_queue"))
    assert queue_ids(response) == [likely.pk, older.pk, unlikely.pk, old.pk]
    assert "over 200 min</span>" not in response.content.decode()


def test_empty_queue_says_so(doctor_client):
    response = doctor_client.get(reverse("review_queue"))
    assert b"No scans waiting." in response.content
    assert doctor_client.get(reverse("review_next"))["Location"] == reverse("review_queue")


def test_queue_is_paginated(doctor_client):
    scans = [predicted(0.5 + n / 100, waited_minutes=1) for n in range(27)]
    first = doctor_client.get(reverse("review_queue"))
    second = doctor_client.get(reverse("review_queue") + "?page=2")
    assert b"Page 1 of 2" in first.content
    assert len(queue_ids(first)) == 25 and len(queue_ids(second)) == 2
    assert queue_ids(first)[0] == scans[-1].pk  # the highest probability
    assert set(queue_ids(first) + queue_ids(second)) == {s.pk for s in scans}


def test_next_opens_the_top_of_the_queue(doctor_client):
    predicted(0.3, waited_minutes=1)
    top = predicted(0.9, waited_minutes=1)
    assert doctor_client.get(reverse("review_next"))["Location"] == reverse("review", args=[top.pk])
