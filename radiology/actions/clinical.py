"""Clinical actions: patients, uploads, the doctors' reviews."""

from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from classifier.conflicts import StateConflict
from radiology.actions.audit import audit
from radiology.actions.files import delete_stored_file
from radiology.actions.pipeline import enqueue_prediction
from radiology.ingest import DecodedImage, RejectedUpload, check_dicom_patient, decode_upload
from radiology.models import Label, Patient, Prediction, Review, Scan
from radiology.observability.metrics import REVIEWS, UPLOADS
from radiology.outcomes import refresh_review_outcome
from radiology.pacs import outbox as pacs_outbox


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
        raise StateConflict({"mrn": "A patient with this MRN already exists."}) from None
    return patient


def safe_filename(name: str) -> str:
    """The last path component of a client-supplied name, whatever its path syntax, without
    control characters (PostgreSQL refuses NUL; others would garble pages and logs)."""
    base = PureWindowsPath(PurePosixPath(name or "").name).name
    return "".join(char for char in base if char.isprintable()).strip()[:255] or "upload"


def patient_for_upload(decoded: DecodedImage, patient: Patient | None = None, mrn: str = "") -> Patient:
    """The patient an upload is for, found as the upload page finds it: the one chosen, else the one
    with the MRN typed, else the one the DICOM file names (its Patient ID is their MRN). Raises
    ValidationError naming what is missing; a DICOM naming someone else is refused by upload_scan."""
    if patient is not None:
        return patient
    mrn = (mrn or "").strip()
    source = "the MRN given"
    if not mrn:
        mrn, source = decoded.dicom_patient.get("mrn", ""), "the patient ID read from the DICOM file"
    if not mrn:
        raise ValidationError({"patient": "Give the patient (id or MRN): only DICOM files name their patient."})
    found = Patient.objects.filter(mrn=mrn).first()
    if found is None:
        raise ValidationError(
            # The message names no patient (it may reach logs): the client knows what it sent.
            {
                "patient": ValidationError(
                    f"No patient has {source} as MRN: create the patient first, then upload.", code="does_not_exist"
                )
            }
        )
    return found


@dataclass
class UploadResult:
    scan: Scan
    duplicate: bool  # the same file was already uploaded for this patient: nothing new was stored


def upload_scan(
    actor,
    patient: Patient,
    filename: str,
    data: bytes,
    decoded: DecodedImage | None = None,
    source: str = Scan.Source.UPLOAD,
) -> UploadResult:
    """Store an X-ray for a patient and queue its prediction. Raises RejectedUpload, storing nothing."""
    decoded = decoded or decode_upload(data)
    check_dicom_patient(decoded, patient.mrn)
    existing = stored_scan_of(patient, decoded)
    if existing:
        audit(actor, "scan.duplicate_upload", existing, after={"original_filename": safe_filename(filename)})
        return UploadResult(existing, duplicate=True)

    original = safe_filename(filename)
    study = decoded.dicom_study
    scan = Scan(
        patient=patient,
        image_format=decoded.image_format,
        original_filename=original,
        sha256=decoded.sha256,
        uploaded_by=actor,
        source=source,
        study_instance_uid=study.get("study_uid", "")[:64],
        series_instance_uid=study.get("series_uid", "")[:64],
        sop_instance_uid=study.get("sop_instance_uid", "")[:64],
    )
    extension = {"png": ".png", "jpeg": ".jpg", "dicom": ".dcm"}[decoded.image_format]
    try:
        with transaction.atomic():
            scan.image.save(f"upload{extension}", ContentFile(data), save=False)
            scan.save()
            audit(
                actor,
                "scan.uploaded",
                scan,
                after={"patient": patient.pk, "original_filename": original, "sha256": scan.sha256, "source": source},
            )
            transaction.on_commit(lambda: enqueue_prediction(scan.pk))
    except IntegrityError:
        # A concurrent upload of the same file (or DICOM instance) for this patient won the race.
        delete_stored_file(scan.image)
        existing = stored_scan_of(patient, decoded)
        audit(actor, "scan.duplicate_upload", existing, after={"original_filename": original})
        return UploadResult(existing, duplicate=True)
    except BaseException:
        delete_stored_file(scan.image)  # never leave an orphan file behind a failed upload
        raise
    UPLOADS.inc()  # committed
    return UploadResult(scan, duplicate=False)


def stored_scan_of(patient: Patient, decoded: DecodedImage) -> Scan | None:
    """The scan already holding this file, or this DICOM instance, for this patient. Raises
    RejectedUpload when the DICOM instance is stored for another patient: a mix-up, never merged."""
    existing = Scan.objects.filter(patient=patient, sha256=decoded.sha256).first()
    sop_instance_uid = decoded.dicom_study.get("sop_instance_uid")
    if existing or not sop_instance_uid:
        return existing
    existing = Scan.objects.select_related("patient").filter(sop_instance_uid=sop_instance_uid).first()
    if existing and existing.patient_id != patient.pk:
        raise RejectedUpload(
            f"This DICOM instance (SOP Instance UID {sop_instance_uid}) is already stored as scan {existing.pk} "
            "of another patient."
        )
    return existing


class ReviewConflict(Exception):
    """The review was decided on a stale view: the scan's latest review is no longer the one the
    doctor saw (`latest` is the one recorded meanwhile, None if the one seen is gone). Nothing changed."""

    def __init__(self, latest: Review | None):
        self.latest = latest
        recorded = f"review {latest.pk} ({latest.final_label} by {latest.doctor})" if latest else "no review"
        super().__init__(f"This scan's latest review is now {recorded}: look at it before deciding again.")


def review_scan(
    actor,
    scan: Scan,
    decision: str,
    note: str = "",
    final_label: str | None = None,
    supersedes: Review | int | None = None,
) -> Review:
    """A doctor's decision on the model's prediction. A later review corrects an earlier one; both stay.

    `supersedes` is the latest review the doctor saw (None: they saw none). When it is not the
    scan's latest review at commit time, ReviewConflict is raised and nothing changes: a double
    submission or a second doctor's stale page never flips a label unseen. The scan row lock
    serializes reviews of one scan; the `one_first_review_per_scan` constraint and the one-to-one
    `supersedes` back it in the database.

    `final_label`, when given (API clients state it), must be the label the decision implies: a
    client that confirms a prediction it has not seen is refused rather than recorded."""
    note = (note or "").strip()
    seen_id = supersedes.pk if isinstance(supersedes, Review) else supersedes
    if decision not in Review.Decision.values:
        raise ValidationError({"decision": f"Decision must be one of: {', '.join(Review.Decision.values)}."})
    try:
        with transaction.atomic():
            scan = Scan.objects.select_for_update().get(pk=scan.pk)
            prediction = Prediction.objects.filter(scan=scan).first()
            if prediction is None:
                raise StateConflict("This scan has no prediction to review yet.")
            # Outside intended use the doctor decides without the model (its output is hidden), so
            # disagreeing with it needs no justification.
            if decision == Review.Decision.OVERRIDE and not note and not prediction.outside_intended_use:
                raise ValidationError({"note": "A note is required to override the model's prediction."})
            previous = scan.latest_review()
            if (previous.pk if previous else None) != seen_id:
                raise ReviewConflict(previous)
            implied = prediction.label if decision == Review.Decision.CONFIRM else Label.other(prediction.label)
            if final_label is not None and final_label != implied:
                raise ValidationError(
                    {
                        "final_label": f"To {decision} this {prediction.label} prediction gives {implied}, not {final_label}."
                    }
                )
            final_label = implied
            review = Review.objects.create(
                scan=scan, doctor=actor, decision=decision, final_label=final_label, note=note, supersedes=previous
            )
            pacs_outbox.add_review_result(review)
            before = {"status": scan.status, "final_label": previous.final_label if previous else None}
            scan.status = Scan.Status.REVIEWED
            scan.save(update_fields=["status"])
            refresh_review_outcome(scan.pk)
            audit(
                actor,
                "scan.reviewed" if previous is None else "scan.review_corrected",
                scan,
                before=before,
                after={
                    "status": scan.status,
                    "decision": decision,
                    "final_label": final_label,
                    "note": note,
                    "review": review.pk,
                    "supersedes": previous.pk if previous else None,
                },
            )
    except IntegrityError:
        # Only reachable without the row lock's protection (e.g. a scan row replaced): the
        # constraints refused a second first review or a second correction of the same review.
        raise ReviewConflict(Scan(pk=scan.pk).latest_review()) from None
    REVIEWS.labels(decision=decision).inc()  # committed
    return review


def show_model_output(actor, scan: Scan):
    """A doctor asks to see the output the model gave for a scan outside its intended use
    (hidden by default): recorded, so the review can be read knowing the doctor saw it."""
    prediction = Prediction.objects.filter(scan=scan).first()
    if prediction is None or not prediction.outside_intended_use:
        raise ValidationError("Only a prediction outside the model's intended use is hidden.")
    with transaction.atomic():
        audit(
            actor,
            "scan.model_output_shown",
            scan,
            after={"intended_use": prediction.intended_use, "probability": prediction.probability},
        )


def model_output_shown_to(actor, scan: Scan) -> bool:
    from radiology.models import AuditEvent

    return AuditEvent.objects.filter(
        actor=actor, action="scan.model_output_shown", object_type="Scan", object_id=str(scan.pk)
    ).exists()
