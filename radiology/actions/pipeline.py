"""The prediction pipeline as one state machine: queued -> processing -> predicted | failed.

A task run claims scans by compare-and-set (`UPDATE ... WHERE status = ...`), writing its claim
token (the Celery task id) and a lease on each. Only the holder of a scan's current claim may
record its prediction or its failure: once an admin re-queues a scan in flight, or its lease ran
out and another run claimed it, the old run's results change nothing. Every claim is an attempt
(`Scan.attempts`); a run that dies (killed, past the hard time limit) leaves its claim to expire
and the next claim counts it. After PREDICTION_MAX_ATTEMPTS the scan is failed with the reason.
"""

import logging
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from classifier.conflicts import StateConflict
from radiology.actions.audit import audit
from radiology.actions.files import delete_stored_file
from radiology.models import Label, Prediction, Scan
from radiology.observability.metrics import PREDICTION_FAILURES, PREDICTIONS
from radiology.pacs import outbox as pacs_outbox
from radiology.shadow import send_to_challenger

log = logging.getLogger(__name__)


def enqueue_prediction(scan_id, countdown=None):
    """Send the prediction task. A broker outage is logged, not raised: the scan stays queued and
    the periodic sweep (tasks.requeue_stale_scans) sends it again once the broker is back."""
    from radiology.tasks import predict_scan

    try:
        predict_scan.apply_async(args=[scan_id], countdown=countdown, retry=False)
    except Exception as error:  # kombu raises transport-specific errors
        log.warning("Scan %s stays queued: the task broker is unreachable (%s)", scan_id, error)
        return False
    Scan.objects.filter(pk=scan_id).update(enqueued_at=timezone.now())
    return True


def claimable(now, claim_token):
    """Scans a task run may claim: waiting ones, ones whose holder's lease ran out, and ones held by
    an earlier run of this same task (a retry, or the message delivered again after its worker died)."""
    held_by_nobody_alive = Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True) | Q(claim_token=claim_token)
    return Q(status=Scan.Status.QUEUED) | (Q(status=Scan.Status.PROCESSING) & held_by_nobody_alive)


def claim_scans_for_prediction(scan_id, claim_token, batch_size=1) -> list[Scan]:
    """Claim a task's scan, and up to `batch_size - 1` other scans waiting in the queue, for this run.

    Scans that wait together are predicted together; their own tasks then find them claimed or
    predicted. A scan another live run holds (its lease not expired) is never taken. A scan whose
    earlier claims used up PREDICTION_MAX_ATTEMPTS (runs killed or past the time limit) is failed
    here instead. Empty when neither the task's scan nor any scan this run held is its to predict.
    """
    now = timezone.now()
    max_attempts = settings.PREDICTION_MAX_ATTEMPTS
    with transaction.atomic():
        own = Scan.objects.filter(claimable(now, claim_token)).filter(Q(pk=scan_id) | Q(claim_token=claim_token))
        for exhausted in own.filter(attempts__gte=max_attempts).values_list("pk", flat=True):
            fail_claimable(
                exhausted,
                claimable(now, claim_token),
                f"The prediction did not finish in {max_attempts} attempts "
                "(its worker was killed, or it ran past the time limit).",
            )
        claim = {
            "status": Scan.Status.PROCESSING,
            "claim_token": claim_token,
            "lease_expires_at": now + timedelta(seconds=settings.PREDICTION_LEASE_SECONDS),
            "processing_since": now,
            "attempts": F("attempts") + 1,
        }
        own_claimed = own.filter(attempts__lt=max_attempts).filter(pk=scan_id).update(**claim)
        # A retry takes back the batch mates its earlier attempt held even when its own scan was
        # recorded before the error: left alone, they would wait for their lease to run out.
        own.filter(attempts__lt=max_attempts).exclude(pk=scan_id).update(**claim)
        if own_claimed:
            # skip_locked: a scan another run is claiming right now stays with that run.
            waiting = list(
                Scan.objects.select_for_update(skip_locked=True)
                .filter(status=Scan.Status.QUEUED, attempts__lt=max_attempts)
                .order_by("uploaded_at", "pk")
                .values_list("pk", flat=True)[: max(batch_size - 1, 0)]
            )
            Scan.objects.filter(pk__in=waiting, status=Scan.Status.QUEUED).update(**claim)
        claimed = Scan.objects.filter(status=Scan.Status.PROCESSING, claim_token=claim_token)
        return sorted(claimed, key=lambda scan: (scan.pk != scan_id, scan.uploaded_at, scan.pk))


def held_by(claim_token):
    return Q(status=Scan.Status.PROCESSING, claim_token=claim_token)


def record_prediction(
    scan_id, model_version, probability, heatmap_png: bytes, inference_ms, *, claim_token, intended_use=None
) -> Prediction | None:
    """Save the model's output if this run still holds the scan's claim; None (nothing stored) when
    it does not: the scan was re-queued, failed, or claimed and predicted by another run.

    `intended_use` is the scan's assessment (classifier.intended_use.Assessment.as_json()): a scan
    outside it is still predicted and kept, for the audit trail and monitoring.

    The heatmap file is written before the row and deleted if the transaction does not commit."""
    prediction = None
    try:
        with transaction.atomic():
            scan = Scan.objects.select_for_update().filter(held_by(claim_token)).filter(pk=scan_id).first()
            if scan is None:
                return None
            threshold = model_version.threshold
            prediction = Prediction(
                scan=scan,
                model_version=model_version,
                probability=float(probability),
                label=Label.PNEUMONIA if probability >= threshold else Label.NORMAL,
                threshold=threshold,
                inference_ms=inference_ms,
                intended_use=intended_use,
            )
            prediction.heatmap.save("heatmap.png", ContentFile(heatmap_png), save=False)
            prediction.save()
            pacs_outbox.add_prediction_results(prediction)
            before = scan.status
            scan.status = Scan.Status.PREDICTED
            scan.failure_reason = ""
            scan.claim_token = ""
            scan.lease_expires_at = None
            scan.save(update_fields=["status", "failure_reason", "claim_token", "lease_expires_at"])
            audit(
                None,
                "scan.predicted",
                scan,
                before={"status": before},
                after={
                    "status": scan.status,
                    "probability": prediction.probability,
                    "label": prediction.label,
                    "model_version": model_version.version,
                    "attempt": scan.attempts,
                    "intended_use": intended_use,
                },
            )
            transaction.on_commit(partial(send_to_challenger, scan.pk), robust=True)
    except BaseException:
        if prediction is not None:
            delete_stored_file(prediction.heatmap)  # a heatmap exists only for a committed prediction
        raise
    PREDICTIONS.inc()  # committed
    return prediction


def fail_claimable(scan_id, condition: Q, reason: str) -> bool:
    """Compare-and-set the scan to failed if it still meets `condition`; False when it did not."""
    with transaction.atomic():
        scan = Scan.objects.select_for_update().filter(condition).filter(pk=scan_id).first()
        if scan is None:
            return False
        before = scan.status
        scan.status = Scan.Status.FAILED
        scan.failure_reason = reason[:2000]
        scan.claim_token = ""
        scan.lease_expires_at = None
        scan.save(update_fields=["status", "failure_reason", "claim_token", "lease_expires_at"])
        audit(
            None,
            "scan.failed",
            scan,
            before={"status": before},
            after={"status": scan.status, "reason": scan.failure_reason, "attempts": scan.attempts},
        )
    PREDICTION_FAILURES.inc()  # committed
    return True


def mark_scan_failed(scan_id, reason: str, *, claim_token) -> bool:
    """A failure retrying cannot help (no usable model, an unreadable image): the scan fails now,
    if this run still holds it. False when it does not (re-queued or claimed by another run)."""
    return fail_claimable(scan_id, held_by(claim_token), reason)


def release_after_error(claim_token, reason: str) -> list[int]:
    """This run failed in an unexpected way (any exception): each scan it still holds has used an
    attempt. Those with attempts left go back to the queue and are sent again after a pause; the
    others fail with the reason. -> the ids sent back to the queue."""
    max_attempts = settings.PREDICTION_MAX_ATTEMPTS
    requeued = []
    held = Scan.objects.filter(held_by(claim_token))
    for scan_id, attempts in held.values_list("pk", "attempts"):
        if attempts >= max_attempts:
            fail_claimable(scan_id, held_by(claim_token), f"Failed in all {attempts} attempts; the last: {reason}")
            continue
        with transaction.atomic():
            released = held.filter(pk=scan_id).update(
                status=Scan.Status.QUEUED, claim_token="", lease_expires_at=None, failure_reason=reason[:2000]
            )
            if released:
                audit(
                    None,
                    "scan.attempt_failed",
                    Scan(pk=scan_id),
                    before={"status": Scan.Status.PROCESSING},
                    after={"status": Scan.Status.QUEUED, "attempts": attempts, "reason": reason[:2000]},
                )
                pause = 10 * attempts  # seconds: a full disk or a permission may be fixed meanwhile
                transaction.on_commit(lambda scan_id=scan_id, pause=pause: enqueue_prediction(scan_id, pause))
                requeued.append(scan_id)
    return requeued


def requeue_scan(actor, scan: Scan) -> Scan:
    """An admin sends a failed (or stuck) scan back to the queue. A scan in flight is taken from its
    run: that run's results will change nothing, and a new run predicts it with fresh attempts."""
    with transaction.atomic():
        scan = Scan.objects.select_for_update().get(pk=scan.pk)
        if scan.status not in (Scan.Status.FAILED, Scan.Status.QUEUED, Scan.Status.PROCESSING):
            raise StateConflict(f"A {scan.get_status_display().lower()} scan cannot be re-queued.")
        before = {
            "status": scan.status,
            "failure_reason": scan.failure_reason,
            "attempts": scan.attempts,
            "claim_token": scan.claim_token,
        }
        scan.status = Scan.Status.QUEUED
        scan.failure_reason = ""
        scan.claim_token = ""
        scan.lease_expires_at = None
        scan.attempts = 0
        scan.save(update_fields=["status", "failure_reason", "claim_token", "lease_expires_at", "attempts"])
        audit(actor, "scan.requeued", scan, before=before, after={"status": scan.status})
        transaction.on_commit(lambda: enqueue_prediction(scan.pk))
    return scan
