"""Faults survived, each with a real Celery worker process on the test database and Redis.

- a task delivered several times: one prediction;
- the model file missing or corrupt: the worker says so, the scan fails with that reason and is
  predicted once an admin re-queues it after the model is fixed;
- the database going away under a running task: the task retries and succeeds;
- the pool process running a task killed (main process alive), or the whole worker killed, in
  the middle of the task: the task is delivered again, one prediction;
- Redis down when a scan is uploaded: the upload is stored, the scan stays queued, and the
  periodic sweep sends it once Redis is back.

To catch the worker in the middle of a task, the tests hold a lock that blocks inserts into the
prediction table: the worker claims the scan, runs the model and then waits on its INSERT, a
state the tests can see in pg_locks. No test hook lives in production code.
"""

import os
import re
import shutil
import signal
import time
from contextlib import contextmanager

import psycopg
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from radiology.actions import clinical
from radiology.models import AuditEvent, Prediction, Scan
from radiology.tasks import predict_scan
from tests.support.images import png_bytes
from tests.support.redis_server import RedisServer
from tests.support.worker import database_url_for_worker, publishing_to, wait_until, worker_for_tests

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TASK_TIMEOUT = 90  # seconds: a worker process's first task loads TensorFlow and the model
VISIBILITY_TIMEOUT = 5  # seconds before Redis hands an unacknowledged task to another worker
RECEIVED = re.compile(r"Task radiology\.tasks\.predict_scan\[([0-9a-f-]+)\] received")


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fault-media")


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fault-worker-logs")


@pytest.fixture(autouse=True)
def media_root(settings, media_dir):
    """The worker reads the uploaded files: both processes share one MEDIA_ROOT."""
    settings.MEDIA_ROOT = media_dir
    return media_dir


@pytest.fixture(scope="module")
def shared_worker(django_db_setup, log_dir, media_dir):
    """One worker for the tests below, started when first needed (and again if a test killed it)."""
    worker = worker_for_tests(log_dir, media_dir)
    yield worker
    worker.stop()


@pytest.fixture
def worker(shared_worker):
    if not shared_worker.running:
        shared_worker.start()
    shared_worker.new_log_section()
    with publishing_to(shared_worker.broker_url):
        yield shared_worker


def upload(radiographer, patient, seed):
    return clinical.upload_scan(radiographer, patient, f"chest-{seed}.png", png_bytes(seed=seed)).scan


def wait_for_status(scan, status, worker, timeout=TASK_TIMEOUT):
    def reached():
        scan.refresh_from_db()
        return scan.status == status

    wait_until(reached, timeout, lambda: f"Scan {scan.pk} is {scan.status}, not {status}:\n{worker.log_tail()}")
    return scan


def audit_actions(scan):
    return list(
        AuditEvent.objects.filter(object_type="Scan", object_id=str(scan.pk))
        .order_by("created_at", "pk")
        .values_list("action", flat=True)
    )


@contextmanager
def prediction_inserts_blocked():
    """Hold a SHARE lock on the prediction table from a connection of our own: reads go on, an
    INSERT waits until the lock is released."""
    blocker = psycopg.connect(database_url_for_worker())
    try:
        blocker.execute(f"LOCK TABLE {Prediction._meta.db_table} IN SHARE MODE")
        yield blocker
    finally:
        blocker.rollback()
        blocker.close()


def wait_until_worker_waits_on_insert(worker, scan):
    """The worker has claimed the scan, run the model, and waits to record the prediction."""

    def waiting():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                [Prediction._meta.db_table],
            )
            return cursor.fetchone()[0] > 0

    wait_until(waiting, TASK_TIMEOUT, lambda: f"The worker never tried to record a prediction:\n{worker.log_tail()}")
    scan.refresh_from_db()
    assert scan.status == Scan.Status.PROCESSING


def test_task_delivered_three_times_gives_one_prediction(model_version, worker, radiographer, patient):
    scan = upload(radiographer, patient, seed=1)  # first delivery: sent when the upload commits
    predict_scan.delay(scan.pk)
    predict_scan.delay(scan.pk)

    wait_until(
        lambda: worker.log_text().count("succeeded") >= 3,
        TASK_TIMEOUT,
        lambda: f"Three deliveries were not all handled:\n{worker.log_tail()}",
    )
    log = worker.log_text()
    assert log.count("succeeded in") == 3
    assert log.count("'predicted'") == 1 and log.count("'already predicted'") == 2
    assert Prediction.objects.filter(scan=scan).count() == 1
    assert audit_actions(scan).count("scan.predicted") == 1


def test_missing_then_corrupt_model_fails_scans_that_predict_after_the_fix(
    model_version, worker, tiny_artifact, tmp_path, radiographer, patient, admin_role_client
):
    from classifier.artifact import read_metadata, write_metadata
    from classifier.registry import register_model

    # A second version, registered from its own copy of the files, then damaged on disk.
    broken_dir = tmp_path / "broken-model"
    shutil.copytree(tiny_artifact.parent, broken_dir)
    broken_path = broken_dir / tiny_artifact.name
    write_metadata(broken_path, {**read_metadata(broken_path), "version": "tiny-damaged"})
    version = register_model(broken_path, activate=True)
    good_bytes = broken_path.read_bytes()

    broken_path.unlink()
    scan = upload(radiographer, patient, seed=2)
    wait_for_status(scan, Scan.Status.FAILED, worker)
    assert "tiny-damaged cannot be loaded" in scan.failure_reason and "missing" in scan.failure_reason
    assert (
        f"MODEL UNAVAILABLE for scan {scan.pk}: Model tiny-damaged cannot be loaded from {broken_path}"
        in worker.log_text()
    )

    broken_path.write_bytes(good_bytes[: len(good_bytes) // 2])  # a truncated copy
    response = admin_role_client.post(reverse("requeue_scan", args=[scan.pk]))
    assert response.status_code == 302
    wait_until(
        lambda: worker.log_text().count(f"MODEL UNAVAILABLE for scan {scan.pk}") == 2,
        TASK_TIMEOUT,
        lambda: f"The re-queued scan did not fail again:\n{worker.log_tail()}",
    )
    scan = wait_for_status(scan, Scan.Status.FAILED, worker)
    assert "sha256 mismatch" in scan.failure_reason

    broken_path.write_bytes(good_bytes)  # the admin puts the right file back
    response = admin_role_client.post(reverse("requeue_scan", args=[scan.pk]))
    assert response.status_code == 302
    wait_for_status(scan, Scan.Status.PREDICTED, worker)
    assert Prediction.objects.get(scan=scan).model_version == version
    assert audit_actions(scan) == [
        "scan.uploaded",
        "scan.failed",
        "scan.requeued",
        "scan.failed",
        "scan.requeued",
        "scan.predicted",
    ]


def test_database_outage_under_a_running_task_is_retried(model_version, worker, radiographer, patient):
    """The worker's connections are terminated in the middle of its task (what a PostgreSQL
    restart does to them) and new connections are refused for a few seconds."""
    database = connection.settings_dict["NAME"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        own_backend = cursor.fetchone()[0]
    # The switch for new connections is thrown from the server's maintenance database.
    server = psycopg.connect(database_url_for_worker().rsplit("/", 1)[0] + "/postgres", autocommit=True)
    with server, prediction_inserts_blocked() as blocker:
        scan = upload(radiographer, patient, seed=3)
        wait_until_worker_waits_on_insert(worker, scan)
        server.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
        try:
            terminated = server.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s AND pid NOT IN (%s, %s)",
                [database, own_backend, blocker.info.backend_pid],
            ).fetchone()[0]
            assert terminated >= 1
            blocker.rollback()
            wait_until(
                lambda: "Retry in" in worker.log_text(), 30, lambda: f"The task did not retry:\n{worker.log_tail()}"
            )
            time.sleep(3)  # the outage goes on: the next attempts are refused too
        finally:
            server.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')

    wait_for_status(scan, Scan.Status.PREDICTED, worker)
    log = worker.log_text()
    # The cut connection fails the running attempt; Django then tries to reconnect, which the
    # outage refuses: that error is the one Celery logs, attempt after attempt.
    assert log.count("retry: Retry in") >= 2
    assert "is not currently accepting connections" in log
    assert Prediction.objects.filter(scan=scan).count() == 1
    assert audit_actions(scan) == ["scan.uploaded", "scan.predicted"]


def test_pool_process_killed_mid_task_is_delivered_again(model_version, worker, radiographer, patient):
    """The process running the task dies (the kernel's OOM killer, a crash in native code) while
    the worker's main process lives on: the task is rejected back to the queue and runs again."""
    with prediction_inserts_blocked():
        scan = upload(radiographer, patient, seed=6)
        wait_until_worker_waits_on_insert(worker, scan)
        (pool_process,) = worker.child_pids()
        os.kill(pool_process, signal.SIGKILL)
        worker.wait_for_log("WorkerLostError", 30)

    wait_for_status(scan, Scan.Status.PREDICTED, worker)
    log = worker.log_text()
    (task_id, again) = RECEIVED.findall(log)
    assert again == task_id
    # The new pool process loaded the model without being taken for hung and killed.
    assert "Timed out waiting for UP message" not in log
    assert Prediction.objects.filter(scan=scan).count() == 1
    assert audit_actions(scan) == ["scan.uploaded", "scan.predicted"]


def test_worker_killed_mid_task_is_delivered_again(model_version, worker, radiographer, patient, log_dir, media_dir):
    with prediction_inserts_blocked():
        scan = upload(radiographer, patient, seed=4)
        wait_until_worker_waits_on_insert(worker, scan)
        worker.kill()  # SIGKILL, main process and pool child: no warm shutdown, no ack
    (task_id,) = RECEIVED.findall(worker.log_text())
    scan.refresh_from_db()
    assert scan.status == Scan.Status.PROCESSING and not Prediction.objects.filter(scan=scan).exists()

    # A replacement worker, whose broker gives unacknowledged messages back after 5 s, comes up
    # once they are that old: kombu looks for them when it starts, then only every 100 s.
    replacement = worker_for_tests(
        log_dir, media_dir, name="replacement", env={"CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT)}
    )
    time.sleep(VISIBILITY_TIMEOUT + 1)
    try:
        replacement.start(purge=False)
        wait_for_status(scan, Scan.Status.PREDICTED, replacement)
        assert RECEIVED.findall(replacement.log_text()) == [task_id]  # the same message, delivered again
    finally:
        replacement.stop()
    assert Prediction.objects.filter(scan=scan).count() == 1
    assert audit_actions(scan) == ["scan.uploaded", "scan.predicted"]


@pytest.fixture
def private_redis():
    server = RedisServer()
    if server.binary is None:
        pytest.skip("redis-server is not installed: the broker outage needs a Redis of its own to stop.")
    server.start()
    yield server
    server.stop()


def test_upload_while_redis_is_down_is_swept_into_the_queue_when_it_is_back(
    private_redis, model_version, patient, radiographer_client, log_dir, media_dir, tmp_path, caplog
):
    # This worker also runs the beat schedule, as `make run` does: the sweep every 2 s sends
    # scans left queued for 3 s.
    worker = worker_for_tests(
        log_dir,
        media_dir,
        name="beat-worker",
        broker_url=private_redis.url,
        beat_schedule=tmp_path / "beat-schedule",
        env={"REQUEUE_SWEEP_SECONDS": "2", "REQUEUE_STALE_AFTER_SECONDS": "3"},
    )
    try:
        worker.start()
        private_redis.stop()
        with publishing_to(private_redis.url):
            started = time.monotonic()
            response = radiographer_client.post(
                reverse("upload"),
                {
                    "patient": patient.pk,
                    "files": SimpleUploadedFile("chest.png", png_bytes(seed=5), content_type="image/png"),
                },
            )
            upload_seconds = time.monotonic() - started
        assert response.status_code == 302
        scan = Scan.objects.get(patient=patient)
        assert scan.image.storage.exists(scan.image.name)
        assert scan.status == Scan.Status.QUEUED and scan.enqueued_at is None
        assert f"Scan {scan.pk} stays queued: the task broker is unreachable" in caplog.text
        assert upload_seconds < 3, f"The upload waited {upload_seconds:.1f} s on the unreachable broker"

        private_redis.start()
        wait_for_status(scan, Scan.Status.PREDICTED, worker)
        log = worker.log_text()
        assert f"Re-queued 1 stale scans: [{scan.pk}]" in log
        assert Prediction.objects.filter(scan=scan).count() == 1
    finally:
        worker.stop()
