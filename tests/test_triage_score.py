"""The queue's order holds across model versions: the margin over each version's own threshold."""

import math
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from radiology.actions import reading
from radiology.models import triage_score
from radiology.triage import ReviewQueue
from tests.factories import ModelVersionFactory, PredictionFactory, UserFactory


def test_the_score_is_the_log_odds_margin_over_the_threshold():
    assert triage_score(0.65, 0.65) == 0
    assert triage_score(0.9, 0.5) == pytest.approx(math.log(9))
    assert triage_score(0.2, 0.5) < 0 < triage_score(0.51, 0.5)
    assert triage_score(1.0, 0.5) > triage_score(0.999, 0.5)  # finite at the ends, still ordered
    assert math.isfinite(triage_score(0.0, 0.5))


@pytest.mark.django_db
def test_scans_of_two_model_versions_rank_by_their_margin_not_their_probability():
    strict, lenient = ModelVersionFactory(threshold=0.65), ModelVersionFactory(threshold=0.3)
    recent = timezone.now() - timedelta(minutes=1)
    barely = PredictionFactory(model_version=strict, probability=0.7, scan__uploaded_at=recent).scan
    clearly = PredictionFactory(model_version=lenient, probability=0.6, scan__uploaded_at=recent).scan
    normal = PredictionFactory(model_version=lenient, probability=0.25, scan__uploaded_at=recent).scan

    assert ReviewQueue().ids() == [clearly.pk, barely.pk, normal.pk]
    assert ReviewQueue().id_after(clearly.pk) == barely.pk


@pytest.mark.django_db
def test_next_reads_only_the_top_of_the_queue():
    recent = timezone.now() - timedelta(minutes=1)
    for i in range(60):
        PredictionFactory(probability=i / 61, scan__uploaded_at=recent)
    doctor = UserFactory(role="doctor")

    with CaptureQueriesContext(connection) as queries:
        chosen = reading.next_scan_to_read(doctor)

    assert chosen == ReviewQueue().ids()[0]
    scan_reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and "radiology_scan" in q["sql"]]
    assert scan_reads and all("LIMIT 1" in sql for sql in scan_reads), scan_reads
    assert len(queries) <= 6
