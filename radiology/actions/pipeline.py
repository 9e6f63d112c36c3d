"""The prediction pipeline: sending the task, claiming scans, recording the model's output or the failure."""

import logging
from functools import partial

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from radiology.actions.audit import audit
from radiology.actions.files import delete_stored_file
from radiology.models import Label, Prediction, Scan
from radiology.shadow import send_to_challenger

log = logging.getLogger(__name__)


def enqueue_prediction(scan_id):
    """Send the prediction task. A broker outage is logged, not raised: the scan stays queued and
    the periodic sweep (tasks.requeue_stale_scans) sends it again once the broker is back."""
    from radiology.tasks import predict_scan

    try:
        predict_scan.apply_async(args=[scan_id], retry=False)
    except Exception as error:  # kombu raises transport-specific errors
        log.warning("Scan %s stays queued: the task broker is unreachable (%s)", scan_id, error)
        return False
    Scan.objects.filter(pk=scan_id).update(enqueued_at=timezone.now())
    return True


def claim_scans_for_prediction(scan_id, batch_size=1) -> list[Scan]:
    """Mark a task's scan, and up to `batch_size - 1` other scans waiting in the queue, as processing.

    Scans that wait together are predicted together; their own tasks then find them predicted.
    The task's own scan may already be processing: a killed worker's task is delivered again.
    Empty when the task's scan needs no prediction (predicted, reviewed, or failed until re-queued).
    """
    with transaction.atomic():
        scan = Scan.objects.select_for_update().get(pk=scan_id)
        if scan.status not in (Scan.Status.QUEUED, Scan.Status.PROCESSING):
            return []
        # skip_locked: a scan another worker is claiming right now stays with that worker.
        waiting = (
            Scan.objects.select_for_update(skip_locked=True)
            .filter(status=Scan.Status.QUEUED)
            .exclude(pk=scan.pk)
            .order_by("uploaded_at", "pk")[: max(batch_size - 1, 0)]
        )
        claimed = [scan, *waiting]
        Scan.objects.filter(pk__in=[s.pk for s in claimed]).update(
            status=Scan.Status.PROCESSING, processing_since=timezone.now()
        )
        return claimed


def record_prediction(scan_id, model_version, probability, heatmap_png: bytes, inference_ms) -> Prediction:
    """Save the model's output once; a task delivered twice finds the first prediction and keeps it."""
    with transaction.atomic():
        scan = Scan.objects.select_for_update().get(pk=scan_id)
        existing = Prediction.objects.filter(scan=scan).first()
        if existing:
            return existing
        threshold = model_version.threshold
        prediction = Prediction(
            scan=scan,
            model_version=model_version,
            probability=float(probability),
            label=Label.PNEUMONIA if probability >= threshold else Label.NORMAL,
            threshold=threshold,
            inference_ms=inference_ms,
        )
        prediction.heatmap.save("heatmap.png", ContentFile(heatmap_png), save=False)
        try:
            prediction.save()
        except BaseException:
            delete_stored_file(prediction.heatmap)
            raise
        before = scan.status
        scan.status = Scan.Status.PREDICTED
        scan.failure_reason = ""
        scan.save(update_fields=["status", "failure_reason"])
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
            },
        )
        transaction.on_commit(partial(send_to_challenger, scan.pk), robust=True)
        return prediction


def mark_scan_failed(scan_id, reason: str):
    with transaction.atomic():
        scan = Scan.objects.select_for_update().get(pk=scan_id)
        if scan.status in (Scan.Status.PREDICTED, Scan.Status.REVIEWED):
            return scan
        before = scan.status
        scan.status = Scan.Status.FAILED
        scan.failure_reason = reason[:2000]
        scan.save(update_fields=["status", "failure_reason"])
        audit(
            None,
            "scan.failed",
            scan,
            before={"status": before},
            after={"status": scan.status, "reason": scan.failure_reason},
        )
        return scan


def requeue_scan(actor, scan: Scan) -> Scan:
    """An admin sends a failed (or stuck) scan back to the queue."""
    with transaction.atomic():
        scan = Scan.objects.select_for_update().get(pk=scan.pk)
        if scan.status not in (Scan.Status.FAILED, Scan.Status.QUEUED, Scan.Status.PROCESSING):
            raise ValidationError(f"A {scan.get_status_display().lower()} scan cannot be re-queued.")
        before = {"status": scan.status, "failure_reason": scan.failure_reason}
        scan.status = Scan.Status.QUEUED
        scan.failure_reason = ""
        scan.save(update_fields=["status", "failure_reason"])
        audit(actor, "scan.requeued", scan, before=before, after={"status": scan.status})
        transaction.on_commit(lambda: enqueue_prediction(scan.pk))
    return scan
