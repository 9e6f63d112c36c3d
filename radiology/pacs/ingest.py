"""Pull new X-rays from the PACS: QIDO-RS finds CR/DX instances, WADO-RS retrieves each, and the
upload path (decode, `upload_scan`) stores and queues it, as if a radiographer had uploaded it.

DICOMweb cannot ask "what arrived since": a study's date is when it was performed, not when it
reached the archive. So each poll walks the CR and DX series, page by page, and skips every
series whose instances are all known (PacsInstance); a series that gained an instance since is
listed again, which is the overlap that loses nothing. PACS_POLL_STUDY_DAYS narrows the walk to
recent study dates on a large archive.
"""

import io
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from classifier.intended_use import CHEST_BODY_PARTS, FRONTAL_MODALITIES, not_frontal_chest
from radiology.actions import clinical
from radiology.actions.audit import audit
from radiology.ingest import RejectedUpload, decode_upload
from radiology.models import Patient, Scan
from radiology.pacs.client import pacs_client
from radiology.pacs.models import PacsInstance, PollState
from radiology.permissions import INTEGRATION

log = logging.getLogger(__name__)

POLLED_MODALITIES = sorted(FRONTAL_MODALITIES)  # radiographs (CR, DX); the model reads nothing else
PAGE_SIZE = 100
PACS_ACCOUNT = "pacs-dicomweb"
# Uncompressed Explicit VR Little Endian: every DICOMweb server must be able to send it, whatever
# compression the modality used, so whatever the archive holds arrives decodable.
UNCOMPRESSED = ("application/dicom", "1.2.840.10008.1.2.1")
# What an unreachable or failing PACS raises; the poll stops and the next one tries again.
PACS_ERRORS = (requests.RequestException, ConnectionError, TimeoutError)
UNREACHABLE = (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)

STUDY_UID, SERIES_UID, SOP_UID, INSTANCES_IN_SERIES = "0020000D", "0020000E", "00080018", "00201209"


@dataclass
class PollReport:
    outcomes: Counter = field(default_factory=Counter)  # PacsInstance.Outcome -> instances this poll
    error: str = ""


class PatientConflict(Exception):
    """The instance cannot be matched to a patient without guessing; an admin resolves it."""


def pacs_account():
    """The service account that PACS ingests are recorded under (it cannot log in)."""
    user, created = get_user_model().objects.get_or_create(username=PACS_ACCOUNT)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
        user.groups.add(Group.objects.get(name=INTEGRATION))
    return user


def poll_pacs() -> PollReport:
    """One poll: every CR/DX instance not yet known is ingested, skipped with its reason, or reported
    as a conflict. A PACS outage stops the poll; what was recorded stays, the rest waits for the next."""
    state = PollState.current()
    PollState.objects.filter(pk=state.pk).update(last_started_at=timezone.now())
    report = PollReport()
    try:
        client = pacs_client()
        for modality in POLLED_MODALITIES:
            for series in series_to_look_at(client, modality):
                ingest_series(client, series, report)
    except PACS_ERRORS as error:
        report.error = f"{type(error).__name__}: {error}"
        log.warning("PACS poll stopped (it resumes at the next poll): %s", report.error)
    if report.error:
        PollState.objects.filter(pk=state.pk).update(last_error=report.error[:2000], last_error_at=timezone.now())
        return report
    PollState.objects.filter(pk=state.pk).update(last_success_at=timezone.now())
    if report.outcomes:
        log.info("PACS poll: %s", dict(report.outcomes))
    return report


def series_to_look_at(client, modality):
    """The modality's series in the PACS, page by page, less those whose instances are all known."""
    filters = {"Modality": modality}
    if settings.PACS_POLL_STUDY_DAYS:
        since = timezone.localdate() - timedelta(days=settings.PACS_POLL_STUDY_DAYS)
        filters["StudyDate"] = f"{since:%Y%m%d}-"
    offset = 0
    while True:
        page = client.search_for_series(
            search_filters=filters, fields=[INSTANCES_IN_SERIES], limit=PAGE_SIZE, offset=offset
        )
        known = known_instance_counts([tag_value(series, SERIES_UID) for series in page])
        for series in page:
            in_pacs = tag_value(series, INSTANCES_IN_SERIES)
            # A PACS that does not say how many instances a series holds has it listed every time.
            if in_pacs is None or known.get(tag_value(series, SERIES_UID), 0) < int(in_pacs):
                yield series
        if len(page) < PAGE_SIZE:
            return
        offset += len(page)


def tag_value(attributes, tag, default=None):
    values = attributes.get(tag, {}).get("Value") or []
    return values[0] if values else default


def known_instance_counts(series_uids) -> dict:
    """{Series Instance UID: how many of its instances are recorded}, in one query for a page."""
    return dict(
        PacsInstance.objects.filter(series_instance_uid__in=series_uids)
        .values_list("series_instance_uid")
        .annotate(Count("pk"))
    )


def ingest_series(client, series, report: PollReport):
    study_uid, series_uid = tag_value(series, STUDY_UID), tag_value(series, SERIES_UID)
    known = set(PacsInstance.objects.filter(series_instance_uid=series_uid).values_list("sop_instance_uid", flat=True))
    offset = 0
    while True:
        page = client.search_for_instances(
            study_instance_uid=study_uid, series_instance_uid=series_uid, limit=PAGE_SIZE, offset=offset
        )
        for instance in page:
            sop_uid = tag_value(instance, SOP_UID)
            if sop_uid and sop_uid not in known:
                try:
                    ingest_instance(client, study_uid, series_uid, sop_uid, report)
                except (*UNREACHABLE, DatabaseError):
                    raise  # the PACS or the database is gone: the poll stops here
                except Exception as error:
                    # This instance alone (the PACS's error answer for it, a file pydicom cannot
                    # write): the others go on, and this one is tried again at the next poll.
                    report.error = f"Instance {sop_uid} could not be ingested: {type(error).__name__}: {error}"
                    log.warning("PACS poll: %s", report.error, exc_info=not isinstance(error, requests.HTTPError))
        if len(page) < PAGE_SIZE:
            return
        offset += len(page)


def ingest_instance(client, study_uid, series_uid, sop_uid, report: PollReport):
    """Retrieve one instance and record what became of it, once, whatever other poller runs."""
    dataset = client.retrieve_instance(study_uid, series_uid, sop_uid, media_types=(UNCOMPRESSED,))
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    record = PacsInstance(
        sop_instance_uid=sop_uid,
        study_instance_uid=study_uid,
        series_instance_uid=series_uid,
        patient_id=str(dataset.get("PatientID", "") or "").strip()[:64],
    )
    try:
        decoded = decode_upload(data)
        skip_reason = frontal_chest_xray_refusal(decoded.dicom_study)
    except RejectedUpload as refusal:
        decoded, skip_reason = None, str(refusal)
    try:
        with transaction.atomic():
            # The row first: a second poller's insert waits here for this transaction, then fails.
            record.outcome = PacsInstance.Outcome.SKIPPED if skip_reason else PacsInstance.Outcome.INGESTED
            record.reason = skip_reason or ""
            record.save()
            if not skip_reason:
                store_scan(record, data, decoded)
    except IntegrityError:
        log.info("PACS instance %s was recorded by another poller", sop_uid)
        return
    report.outcomes[str(record.outcome)] += 1


def store_scan(record: PacsInstance, data: bytes, decoded):
    """Inside the record's transaction: the patient, then the scan through the upload path."""
    account = pacs_account()
    try:
        patient = patient_for(account, decoded.dicom_patient)
        result = clinical.upload_scan(
            account, patient, f"{record.sop_instance_uid}.dcm", data, decoded, Scan.Source.PACS
        )
    except (PatientConflict, RejectedUpload, ValidationError) as conflict:
        # ValidationError: the instance's patient details cannot make a valid patient record.
        reason = " ".join(conflict.messages) if isinstance(conflict, ValidationError) else str(conflict)
        record.outcome, record.reason = PacsInstance.Outcome.CONFLICT, reason
        record.save(update_fields=["outcome", "reason"])
        audit(
            account,
            "pacs.conflict",
            record,
            after={"sop_instance_uid": record.sop_instance_uid, "reason": record.reason},
        )
        return
    record.scan = result.scan
    record.save(update_fields=["scan"])


def frontal_chest_xray_refusal(study: dict) -> str | None:
    """Why this instance is not a frontal chest radiograph (what the model was trained on), or None.
    The rule is the intended-use check's (classifier.intended_use), said attribute by attribute;
    such an instance is not ingested at all: predicting it would only produce a flagged guess."""
    if not not_frontal_chest(study) and study.get("modality"):
        return None
    modality, body_part, view = study.get("modality"), study.get("body_part"), study.get("view_position")
    if modality not in FRONTAL_MODALITIES:
        return f"Modality {modality or 'unstated'} is not a radiograph (CR or DX): not a chest X-ray for this model."
    if body_part and body_part not in CHEST_BODY_PARTS:
        return f"Body part {body_part} is not the chest."
    return f"View position {view} is a lateral view, not a frontal (PA or AP) one."


def patient_for(account, dicom_patient: dict) -> Patient:
    """The patient whose MRN is the instance's Patient ID, or a new one from its details.
    Raises PatientConflict when that would be a guess (the upload page's rule: the MRN decides,
    and a file that disagrees with the patient on record is refused)."""
    mrn = dicom_patient.get("mrn")
    if not mrn:
        raise PatientConflict("The instance has no Patient ID: it cannot be matched to a patient.")
    patient = Patient.objects.filter(mrn=mrn).first()
    if patient is None:
        missing = [label for key, label in DETAILS if not dicom_patient.get(key)]
        if missing:
            raise PatientConflict(
                f"No patient has the instance's Patient ID as MRN, and the instance lacks the {', '.join(missing)} "
                "to create them."
            )
        try:
            return clinical.create_patient(
                account,
                mrn=mrn,
                name=dicom_patient["name"],
                birth_date=dicom_patient["birth_date"],
                sex=dicom_patient["sex"],
            )
        except ValidationError:
            patient = Patient.objects.filter(mrn=mrn).first()  # another poller created them meanwhile
            if patient is None:
                raise
    disagreements = [
        label for key, label in DETAILS if not same_detail(key, getattr(patient, key), dicom_patient.get(key))
    ]
    if disagreements:
        # Which details differ, not their values (the message names no patient): the admin's
        # page lists conflicts by Patient ID, not patients.
        raise PatientConflict(
            f"The instance's {', '.join(disagreements)} differ from those of the patient with its Patient ID "
            "as MRN (compare them in the PACS and on the patient's page)."
        )
    return patient


DETAILS = [("name", "name"), ("birth_date", "birth date"), ("sex", "sex")]


def same_detail(key, recorded, from_dicom) -> bool:
    if not from_dicom:
        return True  # the instance does not say: nothing contradicts the record
    if key == "name":
        # DICOM names are Family^Given; the record may hold more given names than the file.
        return set(str(from_dicom).casefold().split()) <= set(str(recorded).casefold().split())
    return recorded == from_dicom
