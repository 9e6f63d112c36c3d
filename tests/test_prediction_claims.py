"""The prediction state machine in-process: claims by compare-and-set, leases, attempts, re-queues.

Races between workers are in tests/test_pipeline_races.py (real worker processes); here the
rules, with threads where the database must settle a race.
"""

import os
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from radiology.actions import clinical, pipeline
from radiology.models import AuditEvent, Prediction, Scan
from radiology.tasks import predict_scan, requeue_stale_scans
from tests.factories import ModelVersionFactory
from tests.support.images import chest_like_pixels, png_bytes


@pytest.fixture
def sent(monkeypatch):
    """Tasks are not sent: the list collects (scan id, countdown) of what would have been."""
    sends = []
    monkeypatch.setattr(clinical, "enqueue_prediction", lambda scan_id: None)
    monkeypatch.setattr(
        pipeline, "enqueue_prediction", lambda scan_id, countdown=None: sends.append((scan_id, countdown)) or True
    )
    return sends


def upload(user, patient, seed):
    return clinical.upload_scan(user, patient, f"chest-{seed}.png", png_bytes(chest_like_pixels(seed=seed))).scan


def expire_lease(scan):
    Scan.objects.filter(pk=scan.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def test_of_concurrent_claims_of_one_scan_exactly_one_wins(transactional_db, radiographer, patient, sent):
    scan = upload(radiographer, patient, 1)
    barrier = threading.Barrier(8)
    claims = {}

    def claim(token):
        try:
            barrier.wait(timeout=30)
            claims[token] = pipeline.claim_scans_for_prediction(scan.pk, token)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(f"run-{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    winners = [token for token, scans in claims.items() if scans]
    assert len(claims) == 8 and len(winners) == 1
    scan.refresh_from_db()
    assert (scan.status, scan.claim_token, scan.attempts) == (Scan.Status.PROCESSING, winners[0], 1)


def test_a_batch_mate_held_by_a_live_claim_is_not_taken(radiographer, patient, sent):
    own, mate = upload(radiographer, patient, 1), upload(radiographer, patient, 2)

    assert [s.pk for s in pipeline.claim_scans_for_prediction(own.pk, "run-1", batch_size=8)] == [own.pk, mate.pk]
    # The batch mate's own task arrives while run-1 is alive: it leaves the scan to run-1.
    assert pipeline.claim_scans_for_prediction(mate.pk, "run-2", batch_size=8) == []
    mate.refresh_from_db()
    assert (mate.claim_token, mate.attempts) == ("run-1", 1)

    expire_lease(mate)  # run-1 died: its lease ran out
    assert [s.pk for s in pipeline.claim_scans_for_prediction(mate.pk, "run-3")] == [mate.pk]
    mate.refresh_from_db()
    assert (mate.claim_token, mate.attempts) == ("run-3", 2)


def test_a_message_delivered_again_takes_back_what_its_run_held(radiographer, patient, sent):
    own, mate = upload(radiographer, patient, 1), upload(radiographer, patient, 2)
    pipeline.claim_scans_for_prediction(own.pk, "run-1", batch_size=8)

    # The worker was killed; the same message (same task id) comes back before the lease ends.
    again = pipeline.claim_scans_for_prediction(own.pk, "run-1", batch_size=8)

    assert [s.pk for s in again] == [own.pk, mate.pk]
    assert list(Scan.objects.order_by("pk").values_list("attempts", flat=True)) == [2, 2]


def test_a_retry_after_its_own_scan_was_recorded_takes_back_the_batch_mates(
    radiographer, patient, model_version, sent, django_capture_on_commit_callbacks
):
    own, mate = upload(radiographer, patient, 1), upload(radiographer, patient, 2)
    pipeline.claim_scans_for_prediction(own.pk, "run-1", batch_size=8)
    # The run recorded its own scan, then lost the database before the batch mate: Celery retries it.
    with django_capture_on_commit_callbacks(execute=True):
        pipeline.record_prediction(own.pk, model_version, 0.7, b"", 5.0, claim_token="run-1")

    again = pipeline.claim_scans_for_prediction(own.pk, "run-1", batch_size=8)

    assert [s.pk for s in again] == [mate.pk]
    mate.refresh_from_db()
    assert (mate.status, mate.claim_token, mate.attempts) == (Scan.Status.PROCESSING, "run-1", 2)


def test_runs_that_die_use_up_the_attempts_and_the_scan_fails_with_why(radiographer, patient, sent, settings):
    settings.PREDICTION_MAX_ATTEMPTS = 3
    scan = upload(radiographer, patient, 1)
    for attempt in (1, 2, 3):
        assert pipeline.claim_scans_for_prediction(scan.pk, f"run-{attempt}") == [scan]
        expire_lease(scan)  # killed, or past the hard time limit: nothing recorded, the lease runs out

    assert pipeline.claim_scans_for_prediction(scan.pk, "run-4") == []
    scan.refresh_from_db()
    assert scan.status == Scan.Status.FAILED and scan.attempts == 3
    assert "did not finish in 3 attempts" in scan.failure_reason
    assert AuditEvent.objects.filter(action="scan.failed", object_id=str(scan.pk)).count() == 1


def test_unexpected_errors_are_retried_until_the_last_attempt_fails_the_scan(
    radiographer, patient, model_version, sent, settings, django_capture_on_commit_callbacks
):
    settings.PREDICTION_MAX_ATTEMPTS = 3
    scan = upload(radiographer, patient, 1)
    path = scan.image.path
    scan.image.storage.delete(scan.image.name)
    os.mkdir(path)  # the stored image is now a directory: IsADirectoryError, no known failure

    outcomes = []
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            outcomes.append(predict_scan.apply(args=[scan.pk]).get())
        scan.refresh_from_db()
        outcomes.append(scan.status)

    assert outcomes == ["failed", "queued", "failed", "queued", "failed", "failed"]
    assert scan.attempts == 3
    assert scan.failure_reason.startswith("Failed in all 3 attempts; the last: IsADirectoryError")
    assert sent == [(scan.pk, 10), (scan.pk, 20)]  # sent again after a pause, twice
    assert AuditEvent.objects.filter(action="scan.attempt_failed", object_id=str(scan.pk)).count() == 2


def test_a_requeue_in_flight_supersedes_the_old_run(radiographer, patient, admin_user, sent, media_root):
    scan = upload(radiographer, patient, 1)
    version = ModelVersionFactory(threshold=0.5)
    pipeline.claim_scans_for_prediction(scan.pk, "run-1")

    pipeline.requeue_scan(admin_user, scan)

    # The old run finishes after the re-queue: neither its result nor its failure lands.
    assert pipeline.record_prediction(scan.pk, version, 0.9, b"heatmap", 3.0, claim_token="run-1") is None
    assert pipeline.mark_scan_failed(scan.pk, "late failure", claim_token="run-1") is False
    scan.refresh_from_db()
    assert (scan.status, scan.attempts, scan.claim_token) == (Scan.Status.QUEUED, 0, "")
    assert not Prediction.objects.exists()
    assert not (media_root / "heatmaps").exists() or not any((media_root / "heatmaps").rglob("*.png"))

    assert pipeline.claim_scans_for_prediction(scan.pk, "run-2") == [scan]
    assert pipeline.record_prediction(scan.pk, version, 0.2, b"heatmap", 3.0, claim_token="run-2").label == "NORMAL"
    scan.refresh_from_db()
    assert (scan.status, scan.attempts) == (Scan.Status.PREDICTED, 1)


def test_the_sweep_leaves_scans_within_their_lease_or_visibility_window(radiographer, patient, sent):
    now = timezone.now()
    live, expired, resent, resent_long_ago = (upload(radiographer, patient, seed) for seed in range(4))
    Scan.objects.filter(pk=live.pk).update(
        status="processing", lease_expires_at=now + timedelta(seconds=60), enqueued_at=now - timedelta(hours=1)
    )
    Scan.objects.filter(pk=expired.pk).update(
        status="processing", lease_expires_at=now - timedelta(seconds=60), enqueued_at=now - timedelta(minutes=5)
    )
    # Sent again after its lease ran out, and not yet picked up: the message is on its way.
    Scan.objects.filter(pk=resent.pk).update(
        status="processing", lease_expires_at=now - timedelta(seconds=60), enqueued_at=now - timedelta(seconds=30)
    )
    Scan.objects.filter(pk=resent_long_ago.pk).update(
        status="processing", lease_expires_at=now - timedelta(hours=2), enqueued_at=now - timedelta(minutes=31)
    )

    assert sorted(requeue_stale_scans()) == sorted([expired.pk, resent_long_ago.pk])
