"""A real upload, end to end: the radiographer uploads through the page, a real Celery worker
predicts with the tiny model, the doctor confirms on the review page, the dashboard counts it."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from radiology.models import AuditEvent, Prediction, Scan
from tests.support.images import png_bytes
from tests.support.worker import publishing_to, wait_until, worker_for_tests

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PREDICTION_TIMEOUT = 90  # seconds: the worker's first task loads TensorFlow and the model


@pytest.fixture(scope="module")
def worker(django_db_setup, tmp_path_factory):
    worker = worker_for_tests(tmp_path_factory.mktemp("e2e-worker-logs"), tmp_path_factory.mktemp("e2e-media"))
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture(autouse=True)
def media_root(settings, worker):
    """The worker reads the uploaded files: both processes share one MEDIA_ROOT."""
    settings.MEDIA_ROOT = worker.media_root
    with publishing_to(worker.broker_url):
        yield settings.MEDIA_ROOT


def dashboard_numbers(client):
    response = client.get(reverse("dashboard"))
    assert response.status_code == 200
    return response.context["metrics"]


def scan_status_seen_by(client, scan_id):
    response = client.get(reverse("scan_status_json"), {"ids": str(scan_id)})
    assert response.status_code == 200
    (scan,) = response.json()["scans"]
    return scan


def test_upload_predict_review_and_dashboard(
    model_version, worker, patient, radiographer_client, doctor_client, admin_role_client
):
    before = dashboard_numbers(admin_role_client)
    assert before["n"] == 0

    response = radiographer_client.post(
        reverse("upload"),
        {
            "patient": patient.pk,
            "files": SimpleUploadedFile("chest.png", png_bytes(seed=7), content_type="image/png"),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    scan = Scan.objects.get(patient=patient)
    assert response["Location"].endswith(f"?ids={scan.pk}")

    # What the status page polls, without a reload, until the worker has done its part.
    seen = wait_until(
        lambda: (status := scan_status_seen_by(radiographer_client, scan.pk))["final"] and status,
        PREDICTION_TIMEOUT,
        lambda: f"Scan {scan.pk} was not predicted:\n{worker.log_tail()}",
    )
    assert seen["status"] == "predicted", seen
    prediction = Prediction.objects.get(scan=scan)
    assert prediction.model_version == model_version
    assert 0.0 <= prediction.probability <= 1.0
    assert prediction.heatmap.storage.exists(prediction.heatmap.name)
    assert "Task radiology.tasks.predict_scan[" in worker.log_text()

    response = doctor_client.post(reverse("review", args=[scan.pk]), {"decision": "confirm", "note": ""})
    assert response.status_code == 302
    scan.refresh_from_db()
    assert scan.status == Scan.Status.REVIEWED
    assert list(
        AuditEvent.objects.filter(object_type="Scan", object_id=str(scan.pk))
        .order_by("created_at", "pk")
        .values_list("action", flat=True)
    ) == ["scan.uploaded", "scan.predicted", "scan.reviewed"]

    after = dashboard_numbers(admin_role_client)
    assert after["n"] == 1
    assert after["accuracy"] == 1.0
    assert after["override_rate"] == 0.0
    assert after["model_versions"] == [model_version.version]
    positive = prediction.label == "PNEUMONIA"
    assert after["confusion_matrix"] == ([[0, 0], [0, 1]] if positive else [[1, 0], [0, 0]])
