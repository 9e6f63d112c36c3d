"""Celery tasks: thin wrappers that load, call the classifier and record through actions."""

import logging
import os
import time
import uuid
from datetime import timedelta

from celery import shared_task
from celery.signals import worker_init, worker_process_init
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections
from django.db.models import F, Q
from django.utils import timezone

from radiology.actions import pipeline
from radiology.ingest import RejectedUpload, decode_upload
from radiology.models import Scan
from radiology.observability.metrics import INFERENCE_SECONDS, start_worker_exporter

log = logging.getLogger(__name__)
worker_init.connect(start_worker_exporter)  # the worker's main process serves its pool's metrics

# Worth retrying: the database or the file store may be back in a moment.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError, TimeoutError)
MAX_RETRIES = 5
# A queued scan whose task was sent this long ago and never ran is taken as lost and sent again
# (a second delivery is harmless: only one run can hold the claim).
LOST_MESSAGE_AFTER = timedelta(minutes=30)


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
        raise ModelUnavailable(
            f"Model {version.version} cannot be loaded from {version.artifact_path}: {error}"
        ) from error


# The worker's pool size, set in its main process before the pool processes fork (they inherit it).
worker_processes = 1


@worker_init.connect
def remember_worker_processes(sender=None, **kwargs):
    global worker_processes
    worker_processes = max(1, int(getattr(sender, "concurrency", None) or 1))


def inference_threads(configured, cores, processes):
    """Threads for one worker process: INFERENCE_THREADS when set, else the cores shared out
    among the worker's processes (at least one)."""
    return configured if configured > 0 else max(1, cores // max(1, processes))


@worker_process_init.connect
def load_model_in_worker(**kwargs):
    # TensorFlow is not fork-safe: each worker process loads its own model after the fork.
    from classifier.inference import use_threads

    close_old_connections()
    threads = inference_threads(settings.INFERENCE_THREADS, os.cpu_count() or 1, worker_processes)
    use_threads(threads)
    try:
        version, _ = active_predictor()
        log.info("Worker process loaded model %s (%d inference threads)", version.version, threads)
    except ModelUnavailable as error:
        log.error("MODEL UNAVAILABLE (scans will be marked failed until this is fixed): %s", error)
    except Exception as error:  # the database may be down at start; the first task loads the model then
        log.warning("Model not preloaded (%s); it loads on the first task.", error)


@shared_task(bind=True, max_retries=MAX_RETRIES)
def predict_scan(self, scan_id):
    """Claim the scan (and others waiting), predict, record. The claim token is the task id: a
    retry or a redelivery of this message takes back what an earlier run of it held."""
    claim_token = self.request.id or f"local-{uuid.uuid4().hex}"
    scans = []
    try:
        scans = pipeline.claim_scans_for_prediction(scan_id, claim_token, settings.PREDICTION_BATCH_SIZE)
        if not scans:
            return outcome_elsewhere(scan_id)
        version, predictor = active_predictor()
        readable = [
            (scan, decoded)
            for scan, decoded in ((scan, stored_image(scan, claim_token)) for scan in scans)
            if decoded is not None
        ]
        predicted = predict_and_record(predictor, version, readable, claim_token) if readable else []
        if len(scans) > 1:
            log.info("Scan %s: predicted %d scans waiting together", scan_id, len(predicted))
        if scan_id in predicted:
            return "predicted"
        return "failed" if scan_id in {scan.pk for scan in scans} else outcome_elsewhere(scan_id)
    except ModelUnavailable as error:
        log.error("MODEL UNAVAILABLE for scan %s: %s", scan_id, error)
        for scan in scans:
            pipeline.mark_scan_failed(scan.pk, str(error), claim_token=claim_token)
        return "failed"
    except TRANSIENT_ERRORS as error:
        close_old_connections()
        if self.request.retries >= MAX_RETRIES:
            log.error("Scan %s failed after %s retries: %s", scan_id, MAX_RETRIES, error)
            release_when_possible(claim_token, f"Failed after {MAX_RETRIES} retries: {error}")
            return "failed"
        raise self.retry(exc=error, countdown=min(2**self.request.retries, 60)) from error
    except Exception as error:
        # Anything else (a PermissionError, a full disk while saving the heatmap, a bug): this
        # attempt is spent for every scan the run holds; the last attempt fails them with the reason.
        log.exception("Prediction run for scan %s failed", scan_id)
        release_when_possible(claim_token, f"{type(error).__name__}: {error}")
        return "failed"


def outcome_elsewhere(scan_id):
    """What became of a task's scan that this run did not hold."""
    status = Scan.objects.filter(pk=scan_id).values_list("status", flat=True).first()
    if status is None:
        log.warning("Scan %s no longer exists", scan_id)
        return "missing"
    if status == Scan.Status.PROCESSING:
        log.info("Scan %s is held by another live worker: left to it", scan_id)
        return "held elsewhere"
    return "already predicted" if status in (Scan.Status.PREDICTED, Scan.Status.REVIEWED) else status


def stored_image(scan, claim_token):
    """The scan's decoded image, or None (and the scan marked failed) when its file is unreadable."""
    try:
        with scan.image.open("rb") as stored:
            return decode_upload(stored.read())
    except (RejectedUpload, FileNotFoundError) as error:
        pipeline.mark_scan_failed(scan.pk, f"The stored image cannot be read: {error}", claim_token=claim_token)
        return None


def predict_and_record(predictor, version, batch, claim_token) -> list[int]:
    """Predict, check intended use and record a batch of (scan, decoded image); -> the ids predicted.

    An image the model cannot take fails alone: the batch is then predicted scan by scan.
    """
    try:
        pixels = [decoded.pixels for _, decoded in batch]
        started = time.perf_counter()
        probabilities = predictor.predict_proba(pixels)
        inference_ms = (time.perf_counter() - started) * 1000 / len(batch)
        for _ in batch:
            INFERENCE_SECONDS.observe(inference_ms / 1000)
        image_scores = predictor.image_scores(pixels)
        heatmaps = [heatmap_png_for(predictor, one, p) for one, p in zip(pixels, probabilities, strict=True)]
    except TRANSIENT_ERRORS:
        raise
    except Exception as error:  # TensorFlow and the preprocessing raise many types
        if len(batch) > 1:
            return [
                scan_id for item in batch for scan_id in predict_and_record(predictor, version, [item], claim_token)
            ]
        scan, _ = batch[0]
        log.exception("The model could not process scan %s", scan.pk)
        pipeline.mark_scan_failed(scan.pk, f"The model could not process this image: {error}", claim_token=claim_token)
        return []
    recorded = []
    for i, ((scan, decoded), probability, heatmap_png) in enumerate(zip(batch, probabilities, heatmaps)):
        assessment = intended_use_of(
            version, predictor, scan, decoded, None if image_scores is None else image_scores[i]
        )
        if pipeline.record_prediction(
            scan.pk,
            version,
            float(probability),
            heatmap_png,
            inference_ms,
            claim_token=claim_token,
            intended_use=assessment.as_json(),
        ):
            recorded.append(scan.pk)
        else:
            log.info("Scan %s was re-queued or taken over while predicted: this result is dropped", scan.pk)
    return recorded


def intended_use_of(version, predictor, scan, decoded, image_score):
    """The scan's intended-use assessment. The population comes from the model version's metadata
    (a site widens it only through a recorded version); the age is taken on the DICOM study date
    when there is one, else on the upload date."""
    from classifier.intended_use import assess

    population = (version.metadata.get("intended_use") or {}).get("population") or predictor.population
    study_date = decoded.dicom_study.get("study_date") or timezone.localdate(scan.uploaded_at)
    return assess(
        population=population,
        birth_date=scan.patient.birth_date,
        study_date=study_date,
        dicom_study=decoded.dicom_study,
        image_score=image_score,
        image_threshold=predictor.image_threshold,
    )


def heatmap_png_for(predictor, pixels, probability) -> bytes:
    """The Grad-CAM PNG, its opacity scaled by the (calibrated) probability: a scan the model finds
    normal shows a faint map, not its noise stretched to full strength."""
    from classifier.explain import heatmap_png

    return heatmap_png(predictor.gradcam(pixels), strength=probability)


def release_when_possible(claim_token, reason):
    try:
        pipeline.release_after_error(claim_token, reason)
    except TRANSIENT_ERRORS:
        log.exception(
            "Could not release the scans of claim %s; the sweep sends them once its lease runs out", claim_token
        )


@shared_task
def requeue_stale_scans():
    """Send again what the queue lost: scans never sent (the broker was down at upload), scans sent
    long ago that never ran, and scans whose claim's lease ran out (their run died) unless they were
    sent since. A scan within its lease, or sent within its visibility window, is left alone."""
    now = timezone.now()
    never_sent = Q(
        enqueued_at__isnull=True, uploaded_at__lte=now - timedelta(seconds=settings.REQUEUE_STALE_AFTER_SECONDS)
    )
    lost = Q(enqueued_at__lte=now - LOST_MESSAGE_AFTER)
    queued = Scan.objects.filter(status=Scan.Status.QUEUED).filter(never_sent | lost)
    not_sent_since_expiry = Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=F("lease_expires_at")) | lost
    abandoned = Scan.objects.filter(status=Scan.Status.PROCESSING, lease_expires_at__lt=now).filter(
        not_sent_since_expiry
    )
    sent = [scan_id for scan_id in queued.values_list("pk", flat=True) if pipeline.enqueue_prediction(scan_id)]
    sent += [scan_id for scan_id in abandoned.values_list("pk", flat=True) if pipeline.enqueue_prediction(scan_id)]
    if sent:
        log.info("Re-queued %d stale scans: %s", len(sent), sent)
    return sent


@shared_task(bind=True, max_retries=3)
def predict_with_challenger(self, scan_id, version_id):
    """The challenger's shadow prediction of a scan the champion has predicted (radiology/shadow.py).

    Nothing it does reaches the champion's prediction or the scan: a failure is logged and ends here."""
    from radiology.shadow import run_challenger

    try:
        return run_challenger(scan_id, version_id)
    except TRANSIENT_ERRORS as error:
        close_old_connections()
        if self.request.retries >= 3:
            log.error("Challenger gave up on scan %s: %s", scan_id, error)
            return "failed"
        raise self.retry(exc=error, countdown=2**self.request.retries) from error
    except Exception:  # a broken challenger model must not disturb anything else
        log.exception("The challenger could not predict scan %s", scan_id)
        return "failed"
