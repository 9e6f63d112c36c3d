"""The prediction task in-process: scans waiting together are predicted together, each once."""

import pytest

from radiology import actions
from radiology.models import Prediction, Scan
from radiology.tasks import predict_scan
from tests.support.images import chest_like_pixels, png_bytes


@pytest.fixture
def quiet_queue(monkeypatch):
    """Uploads commit without sending tasks: the test runs the task itself."""
    monkeypatch.setattr(actions, "enqueue_prediction", lambda scan_id: None)


def upload(user, patient, seed):
    return actions.upload_scan(user, patient, f"chest-{seed}.png", png_bytes(chest_like_pixels(seed=seed))).scan


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
