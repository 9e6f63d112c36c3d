"""/metrics for Prometheus: never public, and the workflow's figures are there."""

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from radiology.actions import clinical
from tests.factories import ModelVersionFactory, PredictionFactory

PROJECT = Path(__file__).resolve().parent.parent


def samples(response):
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(found, name, **labels):
    return found.get((name, tuple(sorted(labels.items()))), 0)


@pytest.mark.django_db
def test_not_reachable_without_its_token(settings):
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    assert Client().get("/metrics").status_code == 404  # loopback, but no token
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    assert Client().get("/metrics", HTTP_AUTHORIZATION="s3cret-metrics-token").status_code == 404
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token").status_code == 200


@pytest.mark.django_db
def test_without_a_token_only_direct_loopback_requests_are_answered(settings):
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics").status_code == 200  # the test client is 127.0.0.1
    assert Client(REMOTE_ADDR="10.0.0.9").get("/metrics").status_code == 404
    # A proxy on the same host connects from loopback: its forwarded requests are not local.
    assert Client().get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 404


@pytest.mark.django_db
def test_a_logged_in_admin_gets_nothing_more(admin_role_client, settings):
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    assert admin_role_client.get("/metrics", REMOTE_ADDR="10.0.0.9").status_code == 404


def test_the_workflow_is_counted(
    doctor, doctor_client, radiographer, patient, settings, django_capture_on_commit_callbacks
):
    from radiology.observability import metrics
    from tests.support.images import chest_like_pixels, png_bytes

    settings.METRICS_TOKEN = ""
    before = samples(Client().get("/metrics"))
    active = ModelVersionFactory(version="metrics-v1", is_active=True)
    with django_capture_on_commit_callbacks(execute=True):
        clinical.upload_scan(radiographer, patient, "chest.png", png_bytes(chest_like_pixels(size=64, seed=3)))
    waiting = [
        PredictionFactory(model_version=active, probability=p, scan__uploaded_at=timezone.now() - timedelta(hours=h))
        for p, h in ((0.9, 3), (0.2, 1))
    ]
    with django_capture_on_commit_callbacks(execute=True):
        first = clinical.review_scan(doctor, waiting[1].scan, "override", "Consolidation on the left.")
    metrics.INFERENCE_SECONDS.observe(0.012)
    doctor_client.get("/review/")

    after = samples(Client().get("/metrics"))
    assert value(after, "pneumoscan_uploads_total") - value(before, "pneumoscan_uploads_total") == 1
    assert (
        value(after, "pneumoscan_reviews_total", decision="override")
        - value(before, "pneumoscan_reviews_total", decision="override")
        == 1
    )
    assert value(after, "pneumoscan_review_queue_depth") == 1  # the 0.9 scan; the other was reviewed
    assert value(after, "pneumoscan_review_queue_oldest_wait_seconds") == pytest.approx(3 * 3600, abs=60)
    assert value(after, "pneumoscan_scans", status="queued") == 1  # the upload
    assert value(after, "pneumoscan_flagged_share_24h") == pytest.approx(0.5)
    assert value(after, "pneumoscan_override_rate_7d") == 1.0  # one reviewed scan, overridden
    assert value(after, "pneumoscan_active_model_info", version="metrics-v1") == 1
    assert value(after, "pneumoscan_inference_seconds_count") - value(before, "pneumoscan_inference_seconds_count") == 1
    assert value(after, "pneumoscan_http_request_duration_seconds_count", view="review_queue", method="GET") >= 1
    assert first.pk


def test_predictions_and_failures_are_counted_once_committed(db):
    from radiology.actions import pipeline
    from radiology.observability import metrics
    from tests.factories import ScanFactory

    version = ModelVersionFactory()
    held = [ScanFactory(status="processing", claim_token="run-1") for _ in range(2)]
    predicted, failed = metrics.PREDICTIONS._value.get(), metrics.PREDICTION_FAILURES._value.get()
    assert pipeline.record_prediction(held[0].pk, version, 0.7, b"png", 5.0, claim_token="run-1")
    assert pipeline.mark_scan_failed(held[1].pk, "unreadable", claim_token="run-1")
    # Not this run's scans any more: nothing is stored, nothing is counted.
    assert pipeline.record_prediction(held[1].pk, version, 0.7, b"png", 5.0, claim_token="run-1") is None
    assert not pipeline.mark_scan_failed(held[0].pk, "late", claim_token="run-1")
    assert metrics.PREDICTIONS._value.get() == predicted + 1
    assert metrics.PREDICTION_FAILURES._value.get() == failed + 1


WORKER_PROCESS = """
import os, sys
sys.path.insert(0, {project!r})
os.environ["DJANGO_SETTINGS_MODULE"] = "radiology.settings"
from radiology.observability import metrics
metrics.PREDICTIONS.inc(3)
metrics.INFERENCE_SECONDS.observe(0.02)
"""


@pytest.mark.django_db
def test_worker_processes_samples_are_summed_in_multiprocess_mode(tmp_path, monkeypatch, settings):
    """Two pool processes write to PROMETHEUS_MULTIPROC_DIR; one scrape sums them."""
    settings.METRICS_TOKEN = ""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(folder), "PATH": "/usr/bin:/bin", "DEBUG": "1"}
    for _ in range(2):
        subprocess.run(
            [sys.executable, "-c", WORKER_PROCESS.format(project=str(PROJECT))], env=env, check=True, timeout=120
        )
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    found = samples(Client().get("/metrics"))
    assert value(found, "pneumoscan_predictions_total") == 6
    assert value(found, "pneumoscan_inference_seconds_count") == 2


def test_a_celery_worker_serves_its_own_samples_on_loopback(settings):
    import socket
    import urllib.request

    from radiology.observability.metrics import PREDICTIONS, start_worker_exporter

    settings.WORKER_METRICS_PORT = 0
    assert start_worker_exporter() is None  # off unless a port is set
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        settings.WORKER_METRICS_PORT = probe.getsockname()[1]
    server = start_worker_exporter()
    try:
        assert server.server_address[0] == "127.0.0.1"
        PREDICTIONS.inc()
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.WORKER_METRICS_PORT}/metrics", timeout=10) as answer:
            assert "pneumoscan_predictions_total" in answer.read().decode()
    finally:
        server.shutdown()
        server.server_close()
