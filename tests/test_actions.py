"""Domain actions: the rules every page and API call goes through."""

import pytest
from django.core.exceptions import ValidationError

from radiology.actions import clinical, pipeline
from radiology.ingest import RejectedUpload
from radiology.models import AuditEvent, Prediction, Review, Scan
from tests.factories import ModelVersionFactory, PredictionFactory
from tests.support.images import png_bytes


def stored_files(media_root):
    return [p for p in media_root.rglob("*") if p.is_file()] if media_root.exists() else []


def test_upload_stores_scan_audits_and_enqueues_on_commit(
    radiographer, patient, media_root, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr(clinical, "enqueue_prediction", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        result = clinical.upload_scan(radiographer, patient, "chest.png", png_bytes())
    scan = result.scan
    assert not result.duplicate
    assert scan.status == Scan.Status.QUEUED and scan.image_format == "png"
    assert scan.original_filename == "chest.png"
    assert sent == [scan.pk]
    assert len(stored_files(media_root)) == 1
    assert AuditEvent.objects.filter(action="scan.uploaded", object_id=str(scan.pk), actor=radiographer).exists()


def test_nothing_is_enqueued_before_the_transaction_commits(
    radiographer, patient, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr(clinical, "enqueue_prediction", sent.append)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        clinical.upload_scan(radiographer, patient, "chest.png", png_bytes())
        assert sent == []
    assert len(callbacks) == 1


def test_same_file_twice_for_a_patient_is_flagged_not_duplicated(radiographer, patient, media_root):
    first = clinical.upload_scan(radiographer, patient, "a.png", png_bytes(seed=3))
    second = clinical.upload_scan(radiographer, patient, "b.png", png_bytes(seed=3))
    assert second.duplicate and second.scan.pk == first.scan.pk
    assert Scan.objects.count() == 1
    assert len(stored_files(media_root)) == 1


def test_refused_upload_stores_nothing(radiographer, patient, media_root):
    with pytest.raises(RejectedUpload, match="not a PNG, JPEG or DICOM"):
        clinical.upload_scan(radiographer, patient, "notes.png", b"hello, this is text")
    assert Scan.objects.count() == 0
    assert stored_files(media_root) == []


def test_a_failure_after_storing_the_file_leaves_no_orphan(radiographer, patient, media_root, monkeypatch):
    def broken_audit(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(clinical, "audit", broken_audit)
    with pytest.raises(RuntimeError):
        clinical.upload_scan(radiographer, patient, "chest.png", png_bytes())
    assert Scan.objects.count() == 0
    assert stored_files(media_root) == []


def test_path_is_stripped_from_the_original_name(radiographer, patient):
    scan = clinical.upload_scan(radiographer, patient, "..\\..\\windows/../../x.png", png_bytes()).scan
    assert scan.original_filename == "x.png"
    assert ".." not in scan.image.name and scan.image.name.startswith("scans/")


def test_record_prediction_is_idempotent(db, radiographer, patient):
    scan = clinical.upload_scan(radiographer, patient, "chest.png", png_bytes()).scan
    version = ModelVersionFactory(threshold=0.4)
    assert pipeline.claim_scans_for_prediction(scan.pk, "run-1") == [scan]
    first = pipeline.record_prediction(scan.pk, version, 0.41, b"png", 3.0, claim_token="run-1")
    second = pipeline.record_prediction(scan.pk, version, 0.10, b"png", 3.0, claim_token="run-1")
    assert first is not None and second is None
    assert Prediction.objects.filter(scan=scan).count() == 1
    first.refresh_from_db()
    assert first.label == "PNEUMONIA" and first.threshold == 0.4
    scan.refresh_from_db()
    assert scan.status == Scan.Status.PREDICTED


def test_override_needs_a_note_and_flips_the_label(doctor):
    prediction = PredictionFactory(probability=0.9)
    with pytest.raises(ValidationError):
        clinical.review_scan(doctor, prediction.scan, "override", "  ")
    assert Review.objects.count() == 0
    review = clinical.review_scan(doctor, prediction.scan, "override", "Clear lungs on the lateral view.")
    assert review.final_label == "NORMAL"
    prediction.scan.refresh_from_db()
    assert prediction.scan.status == Scan.Status.REVIEWED


def test_a_correction_is_a_new_review_and_both_stay_audited(doctor):
    prediction = PredictionFactory(probability=0.2)
    first = clinical.review_scan(doctor, prediction.scan, "confirm")
    correction = clinical.review_scan(
        doctor, prediction.scan, "override", "Missed a left lower lobe opacity.", supersedes=first
    )
    assert first.final_label == "NORMAL" and correction.final_label == "PNEUMONIA"
    assert correction.supersedes == first
    assert prediction.scan.latest_review() == correction
    actions_logged = list(AuditEvent.objects.filter(object_id=str(prediction.scan.pk)).values_list("action", flat=True))
    assert "scan.reviewed" in actions_logged and "scan.review_corrected" in actions_logged


def test_a_scan_without_prediction_cannot_be_reviewed(doctor, radiographer, patient):
    scan = clinical.upload_scan(radiographer, patient, "chest.png", png_bytes()).scan
    with pytest.raises(ValidationError, match="no prediction"):
        clinical.review_scan(doctor, scan, "confirm")


def test_failed_scan_can_be_requeued_by_admin(
    admin_user, radiographer, patient, django_capture_on_commit_callbacks, monkeypatch
):
    scan = clinical.upload_scan(radiographer, patient, "chest.png", png_bytes()).scan
    pipeline.claim_scans_for_prediction(scan.pk, "run-1")
    pipeline.mark_scan_failed(scan.pk, "model file missing", claim_token="run-1")
    scan.refresh_from_db()
    assert scan.status == Scan.Status.FAILED and scan.failure_reason == "model file missing"
    sent = []
    monkeypatch.setattr(pipeline, "enqueue_prediction", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        pipeline.requeue_scan(admin_user, scan)
    scan.refresh_from_db()
    assert scan.status == Scan.Status.QUEUED and sent == [scan.pk]
    assert AuditEvent.objects.filter(action="scan.requeued", actor=admin_user).exists()


def test_a_reviewed_scan_cannot_be_requeued(admin_user, doctor):
    prediction = PredictionFactory()
    clinical.review_scan(doctor, prediction.scan, "confirm")
    with pytest.raises(ValidationError):
        pipeline.requeue_scan(admin_user, prediction.scan)


def test_a_dicom_naming_another_patient_is_refused(radiographer, patient, media_root):
    from tests.support.images import dicom_bytes

    with pytest.raises(RejectedUpload, match="names another patient"):
        clinical.upload_scan(radiographer, patient, "chest.dcm", dicom_bytes(patient_id="SOMEONE-ELSE"))
    assert Scan.objects.count() == 0 and stored_files(media_root) == []
    scan = clinical.upload_scan(radiographer, patient, "chest.dcm", dicom_bytes(patient_id=patient.mrn)).scan
    assert scan.image_format == "dicom"


def test_a_patient_created_twice_at_once_is_a_validation_error(radiographer, patient, monkeypatch):
    from radiology.models import Patient

    # The second request passed its uniqueness check before the first one saved.
    monkeypatch.setattr(Patient, "full_clean", lambda self: None)
    with pytest.raises(ValidationError) as refused:
        clinical.create_patient(radiographer, mrn=patient.mrn, name="Someone", birth_date=patient.birth_date, sex="M")
    assert "already exists" in str(refused.value.message_dict["mrn"])
    assert Patient.objects.filter(mrn=patient.mrn).count() == 1
