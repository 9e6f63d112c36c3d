"""Domain actions: each changes clinical data inside one transaction and writes an audit event.

Views and API views only translate HTTP into these calls, so the page and the API share every rule.
Side effects on other systems (the task queue) happen only after the transaction commits.
"""

import logging
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from radiology.ingest import DecodedImage, check_dicom_patient, decode_upload
from radiology.models import AuditEvent, Label, Patient, Prediction, Review, Scan

log = logging.getLogger(__name__)


def audit(actor, action, obj, before=None, after=None):
    return AuditEvent.objects.create(
        actor=actor if actor and actor.is_authenticated else None,
        action=action,
        object_type=type(obj).__name__ if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        before=before,
        after=after,
    )


def patient_snapshot(patient):
    return {"mrn": patient.mrn, "name": patient.name, "birth_date": patient.birth_date.isoformat(), "sex": patient.sex}


def create_patient(actor, *, mrn, name, birth_date, sex) -> Patient:
    patient = Patient(mrn=mrn.strip(), name=name.strip(), birth_date=birth_date, sex=sex)
    patient.full_clean()
    try:
        with transaction.atomic():
            patient.save()
            audit(actor, "patient.created", patient, after=patient_snapshot(patient))
    except IntegrityError:
        # Another request created the same MRN between the check above and the save.
        raise ValidationError({"mrn": "A patient with this MRN already exists."}) from None
    return patient


def safe_filename(name: str) -> str:
    """The last path component of a client-supplied name, whatever its path syntax, without
    control characters (PostgreSQL refuses NUL; others would garble pages and logs)."""
    base = PureWindowsPath(PurePosixPath(name or "").name).name
    return "".join(char for char in base if char.isprintable()).strip()[:255] or "upload"


@dataclass
class UploadResult:
    scan: Scan
    duplicate: bool  # the same file was already uploaded for this patient: nothing new was stored


def upload_scan(actor, patient: Patient, filename: str, data: bytes, decoded: DecodedImage | None = None) -> UploadResult:
    """Store an X-ray for a patient and queue its prediction. Raises RejectedUpload, storing nothing."""
    decoded = decoded or decode_upload(data)
    check_dicom_patient(decoded, patient.mrn)
    existing = Scan.objects.filter(patient=patient, sha256=decoded.sha256).first()
    if existing:
        audit(actor, "scan.duplicate_upload", existing, after={"original_filename": safe_filename(filename)})
        return UploadResult(existing, duplicate=True)

    original = safe_filename(filename)
    scan = Scan(
        patient=patient,
        image_format=decoded.image_format,
        original_filename=original,
        sha256=decoded.sha256,
        uploaded_by=actor,
    )
    extension = {"png": ".png", "jpeg": ".jpg", "dicom": ".dcm"}[decoded.image_format]
    try:
        with transaction.atomic():
            scan.image.save(f"upload{extension}", ContentFile(data), save=False)
            scan.save()
            audit(actor, "scan.uploaded", scan, after={"patient": patient.pk, "original_filename": original, "sha256": scan.sha256})
            transaction.on_commit(lambda: enqueue_prediction(scan.pk))
    except IntegrityError:
        # A concurrent upload of the same file for this patient won the race.
        delete_stored_file(scan.image)
        existing = Scan.objects.get(patient=patient, sha256=decoded.sha256)
        audit(actor, "scan.duplicate_upload", existing, after={"original_filename": original})
        return UploadResult(existing, duplicate=True)
    except BaseException:
        delete_stored_file(scan.image)  # never leave an orphan file behind a failed upload
        raise
    return UploadResult(scan, duplicate=False)


def delete_stored_file(field_file):
    if field_file and field_file.name:
        field_file.storage.delete(field_file.name)


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
            after={"status": scan.status, "probability": prediction.probability, "label": prediction.label, "model_version": model_version.version},
        )
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
        audit(None, "scan.failed", scan, before={"status": before}, after={"status": scan.status, "reason": scan.failure_reason})
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


def review_scan(actor, scan: Scan, decision: str, note: str = "", final_label: str | None = None) -> Review:
    """A doctor's decision on the model's prediction. A later review corrects an earlier one; both stay.

    `final_label`, when given (API clients state it), must be the label the decision implies: a
    client that confirms a prediction it has not seen is refused rather than recorded."""
    note = (note or "").strip()
    if decision not in Review.Decision.values:
        raise ValidationError({"decision": f"Decision must be one of: {', '.join(Review.Decision.values)}."})
    if decision == Review.Decision.OVERRIDE and not note:
        raise ValidationError({"note": "A note is required to override the model's prediction."})
    with transaction.atomic():
        scan = Scan.objects.select_for_update().get(pk=scan.pk)
        prediction = Prediction.objects.filter(scan=scan).first()
        if prediction is None:
            raise ValidationError("This scan has no prediction to review yet.")
        previous = scan.latest_review()
        implied = prediction.label if decision == Review.Decision.CONFIRM else Label.other(prediction.label)
        if final_label is not None and final_label != implied:
            raise ValidationError({"final_label": f"To {decision} this {prediction.label} prediction gives {implied}, not {final_label}."})
        final_label = implied
        review = Review.objects.create(
            scan=scan, doctor=actor, decision=decision, final_label=final_label, note=note, supersedes=previous
        )
        before = {"status": scan.status, "final_label": previous.final_label if previous else None}
        scan.status = Scan.Status.REVIEWED
        scan.save(update_fields=["status"])
        audit(actor, "scan.reviewed" if previous is None else "scan.review_corrected", scan, before=before,
              after={"status": scan.status, "decision": decision, "final_label": final_label, "note": note, "review": review.pk})
    return review


def activate_model_version(actor, version):
    """An admin puts a model version in force; new predictions use it, old ones keep theirs.

    Its files are checked first: activating a missing or damaged model would fail every scan."""
    from classifier.artifact import ArtifactError, verified_metadata
    from classifier.models import ModelVersion

    try:
        metadata = verified_metadata(version.resolved_artifact_path())
        if metadata["sha256"] != version.sha256:
            raise ArtifactError(f"{version.artifact_path} is not the file registered (sha256 {metadata['sha256']})")
    except (ArtifactError, OSError) as error:
        raise ValidationError(f"Model {version.version} cannot be activated: {error}") from None
    with transaction.atomic():
        previous = ModelVersion.objects.select_for_update().filter(is_active=True).first()
        version.activate()
        audit(actor, "model_version.activated", version,
              before={"active": previous.version if previous else None}, after={"active": version.version})
    return version


def issue_api_token(actor, user, replace=False):
    """The user's API token: the existing one, or a new one (always new with `replace`, which
    revokes the old). The audit names the user, never the key."""
    with transaction.atomic():
        existing = Token.objects.select_for_update().filter(user=user).first()
        if existing and not replace:
            return existing
        if existing:
            existing.delete()
        token = Token.objects.create(user=user)
        audit(actor, "api_token.issued", user, after={"replaced": existing is not None})
    return token


def revoke_api_token(actor, user) -> bool:
    """Delete the user's API token; False when they had none."""
    with transaction.atomic():
        deleted, _ = Token.objects.filter(user=user).delete()
        if deleted:
            audit(actor, "api_token.revoked", user)
    return bool(deleted)
