"""The prediction task in-process: scans waiting together are predicted together, each once."""

import pytest

from radiology.actions import clinical, pipeline
from radiology.models import Prediction, Scan
from radiology.tasks import predict_scan
from tests.support.images import chest_like_pixels, png_bytes


@pytest.fixture
def quiet_queue(monkeypatch):
    """Uploads commit without sending tasks: the test runs the task itself."""
    monkeypatch.setattr(clinical, "enqueue_prediction", lambda scan_id: None)


def upload(user, patient, seed):
    return clinical.upload_scan(user, patient, f"chest-{seed}.png", png_bytes(chest_like_pixels(seed=seed))).scan


def test_waiting_scans_are_predicted_in_one_batch(radiographer, patient, model_version, quiet_queue, settings):
    settings.PREDICTION_BATCH_SIZE = 3
    scans = [upload(radiographer, patient, seed) for seed in range(4)]

    assert predict_scan.apply(args=[scans[2].pk]).get() == "predicted"
    statuses = {scan.pk: Scan.objects.get(pk=scan.pk).status for scan in scans}
    # The task's own scan and the two oldest waiting ones; the fourth waits for its own task.
    assert [statuses[scan.pk] for scan in scans] == ["predicted", "predicted", "predicted", "queued"]

    assert predict_scan.apply(args=[scans[0].pk]).get() == "already predicted"
    assert predict_scan.apply(args=[scans[3].pk]).get() == "predicted"
    assert Prediction.objects.count() == 4
    for prediction in Prediction.objects.all():
        assert 0.0 <= prediction.probability <= 1.0
        assert prediction.model_version == model_version
        assert prediction.heatmap.read().startswith(b"\x89PNG")


def test_an_unreadable_batch_mate_fails_alone(radiographer, patient, model_version, quiet_queue, settings):
    settings.PREDICTION_BATCH_SIZE = 8
    own, broken = upload(radiographer, patient, 1), upload(radiographer, patient, 2)
    broken.image.storage.delete(broken.image.name)

    assert predict_scan.apply(args=[own.pk]).get() == "predicted"
    own.refresh_from_db(), broken.refresh_from_db()
    assert own.status == Scan.Status.PREDICTED
    assert broken.status == Scan.Status.FAILED and "cannot be read" in broken.failure_reason


def test_no_active_model_marks_the_scan_failed_with_the_reason(radiographer, patient, quiet_queue):
    scan = upload(radiographer, patient, 1)
    assert predict_scan.apply(args=[scan.pk]).get() == "failed"
    scan.refresh_from_db()
    assert scan.status == Scan.Status.FAILED
    assert "No model version is active" in scan.failure_reason


def test_an_image_the_model_cannot_take_fails_alone_and_the_batch_goes_on(
    radiographer, patient, model_version, quiet_queue, settings, monkeypatch
):
    from classifier.inference import Predictor

    settings.PREDICTION_BATCH_SIZE = 8
    good, bad = upload(radiographer, patient, 1), upload(radiographer, patient, 2)
    bad_pixels = chest_like_pixels(seed=2)
    original = Predictor.predict_proba

    def refuse_one(self, images):
        if any(image.shape == bad_pixels.shape and (image == bad_pixels).all() for image in images):
            raise ValueError("cannot take this image")
        return original(self, images)

    monkeypatch.setattr(Predictor, "predict_proba", refuse_one)
    assert predict_scan.apply(args=[good.pk]).get() == "predicted"
    good.refresh_from_db(), bad.refresh_from_db()
    assert good.status == Scan.Status.PREDICTED
    assert bad.status == Scan.Status.FAILED and "could not process this image" in bad.failure_reason


def test_the_sweep_sends_what_the_queue_lost_and_nothing_else(radiographer, patient, quiet_queue, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from radiology.tasks import requeue_stale_scans

    now = timezone.now()
    never_sent, lost, recent, abandoned, busy = (upload(radiographer, patient, seed) for seed in range(5))
    Scan.objects.filter(pk=never_sent.pk).update(uploaded_at=now - timedelta(minutes=5), enqueued_at=None)
    Scan.objects.filter(pk=lost.pk).update(
        uploaded_at=now - timedelta(hours=1), enqueued_at=now - timedelta(minutes=31)
    )
    Scan.objects.filter(pk=recent.pk).update(
        uploaded_at=now - timedelta(hours=1), enqueued_at=now - timedelta(minutes=5)
    )
    Scan.objects.filter(pk=abandoned.pk).update(status="processing", lease_expires_at=now - timedelta(seconds=5))
    Scan.objects.filter(pk=busy.pk).update(status="processing", lease_expires_at=now + timedelta(seconds=30))
    sent = []
    monkeypatch.setattr(pipeline, "enqueue_prediction", lambda scan_id: sent.append(scan_id) or True)
    assert sorted(requeue_stale_scans()) == sorted([never_sent.pk, lost.pk, abandoned.pk])
