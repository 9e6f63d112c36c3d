"""Celery tasks: thin wrappers that load, call the classifier and record through actions."""

import logging
import time
from datetime import timedelta

from celery import shared_task
from celery.signals import worker_process_init
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections
from django.utils import timezone

from radiology import actions
from radiology.ingest import RejectedUpload, decode_upload
from radiology.models import Scan

log = logging.getLogger(__name__)

# Worth retrying: the database or the file store may be back in a moment.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, DatabaseError, ConnectionError, TimeoutError)
MAX_RETRIES = 5


class ModelUnavailable(RuntimeError):
    """No usable model: none active, or its file missing or corrupt. Retrying will not help."""


def active_predictor():
    from classifier.artifact import ArtifactError
    from classifier.models import ModelVersion
    from classifier.registry import get_predictor

    version = ModelVersion.active()
    if version is None:
        raise ModelUnavailable("No model version is active: an admin must activate one.")
    try:
        return version, get_predictor(version)
    except (ArtifactError, OSError, ValueError) as error:
        raise ModelUnavailable(f"Model {version.version} cannot be loaded from {version.artifact_path}: {error}") from error


@worker_process_init.connect
def load_model_in_worker(**kwargs):
    # TensorFlow is not fork-safe: each worker process loads its own model after the fork.
    close_old_connections()
    try:
        version, _ = active_predictor()
        log.info("Worker process loaded model %s", version.version)
    except ModelUnavailable as error:
        log.error("MODEL UNAVAILABLE (scans will be marked failed until this is fixed): %s", error)
    except Exception as error:  # the database may be down at start; the first task loads the model then
        log.warning("Model not preloaded (%s); it loads on the first task.", error)


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def predict_scan(self, scan_id):
    try:
        scans = actions.claim_scans_for_prediction(scan_id, settings.PREDICTION_BATCH_SIZE)
        if not scans:
            return "already predicted"
        version, predictor = active_predictor()
        readable = [(scan, pixels) for scan, pixels in ((scan, stored_pixels(scan)) for scan in scans) if pixels is not None]
        started = time.perf_counter()
        probabilities = predictor.predict_proba([pixels for _, pixels in readable])
        inference_ms = (time.perf_counter() - started) * 1000 / max(len(readable), 1)
        for (scan, pixels), probability in zip(readable, probabilities):
            heatmap_png = heatmap_png_for(predictor, pixels)
            actions.record_prediction(scan.pk, version, float(probability), heatmap_png, inference_ms)
        if len(scans) > 1:
            log.info("Predicted scan %s with %d others waiting beside it", scan_id, len(scans) - 1)
        return "predicted" if any(scan.pk == scan_id for scan, _ in readable) else "failed"
    except Scan.DoesNotExist:
        log.warning("Scan %s no longer exists", scan_id)
        return "missing"
    except ModelUnavailable as error:
        log.error("MODEL UNAVAILABLE for scan %s: %s", scan_id, error)
        for scan in scans:
            actions.mark_scan_failed(scan.pk, str(error))
        return "failed"
    except TRANSIENT_ERRORS as error:
        close_old_connections()
        if self.request.retries >= MAX_RETRIES:
            log.error("Scan %s failed after %s retries: %s", scan_id, MAX_RETRIES, error)
            mark_failed_when_possible(scan_id, f"Failed after {MAX_RETRIES} retries: {error}")
            return "failed"
        raise self.retry(exc=error, countdown=min(2 ** self.request.retries, 60))


def stored_pixels(scan):
    """The scan's decoded pixels, or None (and the scan marked failed) when its file is unreadable."""
    try:
        with scan.image.open("rb") as stored:
            return decode_upload(stored.read()).pixels
    except (RejectedUpload, FileNotFoundError) as error:
        actions.mark_scan_failed(scan.pk, f"The stored image cannot be read: {error}")
        return None


def heatmap_png_for(predictor, pixels) -> bytes:
    from classifier.explain import heatmap_png

    return heatmap_png(predictor.gradcam(pixels))


def mark_failed_when_possible(scan_id, reason):
    try:
        actions.mark_scan_failed(scan_id, reason)
    except TRANSIENT_ERRORS:
        log.exception("Could not mark scan %s failed; the stale-scan sweep will re-queue it", scan_id)


@shared_task
def requeue_stale_scans():
    """Send again every scan left queued too long (a broker outage at upload, a lost message)."""
    cutoff = timezone.now() - timedelta(seconds=settings.REQUEUE_STALE_AFTER_SECONDS)
    stale = Scan.objects.filter(status=Scan.Status.QUEUED, uploaded_at__lte=cutoff).exclude(enqueued_at__gt=cutoff)
    sent = [scan_id for scan_id in stale.values_list("pk", flat=True) if actions.enqueue_prediction(scan_id)]
    if sent:
        log.info("Re-queued %d stale scans: %s", len(sent), sent)
    return sent
