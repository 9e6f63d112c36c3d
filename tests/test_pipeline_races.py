"""Races in the worker, with a real Celery worker process on the test database and Redis.

- a batch mate that a live worker holds is not taken by another run of the task;
- an admin's re-queue of a scan in flight is not lost when the old run fails afterwards;
- a run killed again and again (a crash loop) ends with the scan failed after the set attempts.

To hold the worker in the middle of a task without holding any database lock, the scan's
stored file is replaced by a named pipe: the worker claims the scan, opens the file and waits
there until the test writes the image into the pipe (or an empty file, or kills the worker).
"""

import errno
import fcntl
import os
import re
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest

from radiology.actions import clinical, pipeline
from radiology.models import AuditEvent, Prediction, Scan
from radiology.tasks import predict_scan
from tests.support.images import png_bytes
from tests.support.worker import publishing_to, wait_until, worker_for_tests

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TASK_TIMEOUT = 90  # seconds: a new pool process loads TensorFlow and the model first


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("race-media")


@pytest.fixture(autouse=True)
def media_root(settings, media_dir):
    settings.MEDIA_ROOT = media_dir
    return media_dir


@pytest.fixture(scope="module")
def shared_worker(django_db_setup, tmp_path_factory, media_dir):
    worker = worker_for_tests(
        tmp_path_factory.mktemp("race-worker-logs"), media_dir, name="races", env={"INFERENCE_THREADS": "1"}
    )
    yield worker
    worker.stop()


@pytest.fixture
def worker(shared_worker):
    if not shared_worker.running:
        shared_worker.start()
    shared_worker.new_log_section()
    with publishing_to(shared_worker.broker_url):
        yield shared_worker


@pytest.fixture
def unsent(monkeypatch):
    """Uploads store their scan without sending its task: the test sends what it needs."""
    monkeypatch.setattr(clinical, "enqueue_prediction", lambda scan_id: None)


def upload(radiographer, patient, seed):
    return clinical.upload_scan(radiographer, patient, f"chest-{seed}.png", png_bytes(seed=seed)).scan


class HeldImage:
    """The scan's stored file as a named pipe: a worker reading it waits until released."""

    def __init__(self, scan):
        self.path = Path(scan.image.path)
        self.data = self.path.read_bytes()
        self.pipe = self.path.with_name(self.path.name + ".pipe")  # a second name of the same pipe
        self.path.unlink()
        os.mkfifo(self.pipe)
        os.link(self.pipe, self.path)

    def restore_file(self):
        """Later readers get the real file; a reader already waiting on the pipe keeps waiting."""
        spare = self.path.with_name(self.path.name + ".restored")
        spare.write_bytes(self.data)
        os.replace(spare, self.path)

    def wait_for_reader(self, worker):
        """The pipe's write end, opened once a worker waits on the read end."""

        def opened():
            try:
                return os.open(self.pipe, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as error:
                if error.errno != errno.ENXIO:  # ENXIO: nobody reads yet
                    raise
                return None

        fd = wait_until(opened, TASK_TIMEOUT, lambda: f"No worker opened the image:\n{worker.log_tail()}")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return fd

    def release(self, worker, data=None):
        """Let the waiting reader have the image (or `data`), then the real file stays."""
        self.restore_file()
        fd = self.wait_for_reader(worker)
        try:
            os.write(fd, self.data if data is None else data)
        finally:
            os.close(fd)
        self.pipe.unlink()


@contextmanager
def held(scan):
    image = HeldImage(scan)
    try:
        yield image
    finally:
        if image.pipe.exists():
            image.pipe.unlink()
        if image.path.is_fifo():
            image.restore_file()


def claimed(scan, worker, attempts=1):
    def holds():
        scan.refresh_from_db()
        return scan.status == Scan.Status.PROCESSING and scan.attempts == attempts

    wait_until(
        holds, TASK_TIMEOUT, lambda: f"Scan {scan.pk} is {scan.status}, attempt {scan.attempts}:\n{worker.log_tail()}"
    )
    return scan


def settled(scan, status, worker):
    def reached():
        scan.refresh_from_db()
        return scan.status == status

    wait_until(reached, TASK_TIMEOUT, lambda: f"Scan {scan.pk} is {scan.status}, not {status}:\n{worker.log_tail()}")
    return scan


def actions(scan):
    return list(
        AuditEvent.objects.filter(object_type="Scan", object_id=str(scan.pk))
        .order_by("created_at", "pk")
        .values_list("action", flat=True)
    )


def test_a_batch_mate_held_by_a_live_worker_is_not_claimed(model_version, worker, radiographer, patient, unsent):
    own, mate = upload(radiographer, patient, 11), upload(radiographer, patient, 12)
    with held(own) as image:
        predict_scan.delay(own.pk)
        claimed(own, worker)
        mate.refresh_from_db()
        assert (mate.status, mate.claim_token) == (Scan.Status.PROCESSING, own.claim_token)

        # The mate's own task, run elsewhere (here: this process) while the worker holds it.
        assert predict_scan.apply(args=[mate.pk]).get() == "held elsewhere"
        mate.refresh_from_db()
        assert (mate.claim_token, mate.attempts) == (own.claim_token, 1)

        image.release(worker)
    settled(own, Scan.Status.PREDICTED, worker)
    settled(mate, Scan.Status.PREDICTED, worker)
    assert Prediction.objects.filter(scan__in=[own, mate]).count() == 2
    assert actions(mate) == ["scan.uploaded", "scan.predicted"]


def test_an_admin_requeue_in_flight_is_not_lost_when_the_old_run_fails(
    model_version, worker, radiographer, patient, admin_user, unsent
):
    scan = upload(radiographer, patient, 13)
    with held(scan) as image:
        predict_scan.delay(scan.pk)
        claimed(scan, worker)

        pipeline.requeue_scan(admin_user, scan)  # sends a new task, queued behind the running one
        # The old run then reads an empty file and fails the scan, as it would have: too late.
        image.release(worker, data=b"")
    scan = settled(scan, Scan.Status.PREDICTED, worker)
    assert Prediction.objects.filter(scan=scan).count() == 1
    assert actions(scan) == ["scan.uploaded", "scan.requeued", "scan.predicted"]
    assert scan.attempts == 1


def test_a_crash_loop_ends_with_the_scan_failed_after_the_set_attempts(
    model_version, worker, radiographer, patient, unsent, settings
):
    attempts = settings.PREDICTION_MAX_ATTEMPTS
    scan = upload(radiographer, patient, 14)
    with held(scan):
        predict_scan.delay(scan.pk)
        killed = set()
        for attempt in range(1, attempts + 1):
            claimed(scan, worker, attempts=attempt)
            # The process running the task dies (OOM killer, native crash); the message comes back.
            (pool_process,) = set(worker.child_pids()) - killed
            os.kill(pool_process, signal.SIGKILL)
            killed.add(pool_process)
        scan = settled(scan, Scan.Status.FAILED, worker)
    assert scan.attempts == attempts
    assert f"did not finish in {attempts} attempts" in scan.failure_reason
    assert not Prediction.objects.filter(scan=scan).exists()
    assert actions(scan) == ["scan.uploaded", "scan.failed"]


def test_each_worker_process_gives_the_model_its_share_of_threads(model_version, worker):
    # INFERENCE_THREADS=1 for this worker; unset, it would be the cores over the processes.
    loaded = re.compile(r"Worker process loaded model \S+ \(1 inference threads\)")
    wait_until(
        lambda: loaded.search(worker.log_path.read_text(errors="replace")),  # the whole log: it loads at start
        TASK_TIMEOUT,
        lambda: f"No process loaded the model with 1 thread:\n{worker.log_tail()}",
    )


@pytest.mark.parametrize(
    "configured, cores, processes, threads", [(0, 16, 4, 4), (0, 2, 1, 2), (0, 2, 4, 1), (3, 16, 4, 3)]
)
def test_inference_threads_share_the_cores_among_the_worker_processes(configured, cores, processes, threads):
    from radiology.tasks import inference_threads

    assert inference_threads(configured, cores, processes) == threads
