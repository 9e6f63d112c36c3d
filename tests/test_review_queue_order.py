"""The review queue read in two index-served parts (radiology/triage.py) against the rule written out
row by row: overdue scans first, oldest first; then the most likely pneumonia first."""

import random
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from radiology.models import Scan
from radiology.triage import ReviewQueue
from tests.factories import PredictionFactory


def reference_order(now, cap_minutes):
    overdue_before = now - timedelta(minutes=cap_minutes)
    waiting = list(Scan.objects.filter(status="predicted").select_related("prediction"))

    def key(scan):
        if scan.uploaded_at <= overdue_before:
            return (0, scan.uploaded_at, 0, scan.pk)
        return (1, -scan.prediction.probability, scan.uploaded_at, scan.pk)

    return [scan.pk for scan in sorted(waiting, key=key)]


@pytest.fixture
def random_queue(db, settings):
    settings.TRIAGE_MAX_WAIT_MINUTES = 60
    rng = random.Random(5)
    now = timezone.now()
    same_time = now - timedelta(minutes=30)
    for _ in range(45):
        minutes = rng.choice([rng.uniform(0, 59), rng.uniform(61, 600), 30])  # ties on upload time too
        PredictionFactory(
            probability=rng.choice([0.5, 0.7, round(rng.random(), 3)]),  # tied scores
            scan__uploaded_at=same_time if minutes == 30 else now - timedelta(minutes=minutes),
        )
    PredictionFactory(scan__status="reviewed")  # not waiting
    return now


def test_every_slice_is_the_reference_order(random_queue):
    expected = reference_order(random_queue, 60)
    queue = ReviewQueue(random_queue)
    assert queue.count() == len(expected) == 45
    assert queue.ids() == expected
    for start in range(0, 46, 7):
        for size in (1, 5, 20):
            assert [scan.pk for scan in queue[start : start + size]] == expected[start : start + size]
    overdue = {scan.pk for scan in queue[:] if scan.overdue_rank == 0}
    assert overdue == {
        pk for pk in expected if Scan.objects.get(pk=pk).uploaded_at <= random_queue - timedelta(hours=1)
    }
    assert 0 < len(overdue) < 45


def test_next_after_each_scan_follows_the_order_and_wraps(random_queue):
    expected = reference_order(random_queue, 60)
    queue = ReviewQueue(random_queue)
    assert queue.first_id() == expected[0]
    for position, scan_id in enumerate(expected):
        following = expected[position + 1] if position + 1 < len(expected) else expected[0]
        assert queue.id_after(scan_id) == following
    reviewed = Scan.objects.get(status="reviewed")
    assert queue.id_after(reviewed.pk) == expected[0]  # not waiting: the top of the queue


def test_a_queue_of_one_has_no_next(db):
    only = PredictionFactory().scan
    assert ReviewQueue().first_id() == only.pk
    assert ReviewQueue().id_after(only.pk) is None


def test_the_page_and_the_api_read_a_fixed_number_of_queries(doctor_client, django_assert_max_num_queries):
    """No query per scan: a full page costs what a page of two costs."""
    PredictionFactory(probability=0.1, scan__uploaded_at=timezone.now() - timedelta(hours=2))  # overdue
    PredictionFactory(probability=0.2)  # recent: both parts of the queue are read
    with CaptureQueriesContext(connection) as few:
        doctor_client.get(reverse("review_queue"))
        doctor_client.get("/api/v1/queue/")
    for n in range(30):
        PredictionFactory(probability=n / 30, scan__uploaded_at=timezone.now() - timedelta(hours=n % 2 * 2))
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert doctor_client.get(reverse("review_queue")).status_code == 200
        body = doctor_client.get("/api/v1/queue/").json()
    assert body["count"] == 32 and len(body["results"]) == 32
