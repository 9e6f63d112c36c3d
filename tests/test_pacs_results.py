"""Results back to a real Orthanc: after the prediction an unverified SR and a Grad-CAM secondary
capture in the scan's study, after the doctor's review a verified SR, a correction superseding it;
every object valid for dciodvfy; a PACS outage during a send loses nothing and stores nothing twice."""

import io
from datetime import timedelta

import pytest
from django.utils import timezone

from radiology.actions import clinical
from radiology.models import Scan
from radiology.pacs import outbox
from radiology.pacs.client import pacs_client
from radiology.pacs.ingest import poll_pacs
from radiology.pacs.models import OutboxItem
from radiology.tasks import predict_scan
from tests.factories import UserFactory
from tests.support.dciodvfy import dciodvfy_errors, dciodvfy_missing
from tests.support.orthanc import modality_instance

pytestmark = pytest.mark.django_db(transaction=True)

PNEUMONIA, PRESENT, ABSENT = "233604007", "52101004", "2667000"


@pytest.fixture(autouse=True)
def quiet_queue(monkeypatch):
    """The test runs the prediction task and the sends itself."""
    monkeypatch.setattr(clinical, "enqueue_prediction", lambda scan_id: None)
    monkeypatch.setattr(outbox, "send_soon", lambda: None)


@pytest.fixture
def pacs_scan(orthanc, model_version):
    """A CR instance stored in Orthanc, pulled and predicted."""
    orthanc.store(modality_instance(seed=3, patient_id="MRN-SR-1", patient_name="Curie^Marie"))
    assert poll_pacs().outcomes == {"ingested": 1}
    scan = Scan.objects.get()
    assert predict_scan.apply(args=[scan.pk]).get() == "predicted"
    return Scan.objects.get(pk=scan.pk)


def study_objects(scan, modality):
    """What QIDO-RS finds of a modality in the scan's study, retrieved with WADO-RS."""
    client = pacs_client()
    found = client.search_for_instances(
        study_instance_uid=scan.study_instance_uid, search_filters={"Modality": modality}
    )
    return [
        client.retrieve_instance(
            scan.study_instance_uid, attributes["0020000E"]["Value"][0], attributes["00080018"]["Value"][0]
        )
        for attributes in found
    ]


def as_bytes(dataset):
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def content_items(dataset):
    for item in dataset.get("ContentSequence", []):
        yield item
        yield from content_items(item)


def coded_finding(report):
    """The report's Pneumonia finding: its presence code."""
    return next(
        item.ConceptCodeSequence[0].CodeValue
        for item in content_items(report)
        if item.ValueType == "CODE" and item.ConceptNameCodeSequence[0].CodeValue == PNEUMONIA
    )


def coded(report, concept):
    """The meanings of the report's coded values for one concept of ours (99PNEUMOSCAN)."""
    return [
        item.ConceptCodeSequence[0].CodeMeaning
        for item in content_items(report)
        if item.ValueType == "CODE" and item.ConceptNameCodeSequence[0].CodeValue == concept
    ]


def numbers(report):
    return {
        item.ConceptNameCodeSequence[0].CodeMeaning: float(item.MeasuredValueSequence[0].NumericValue)
        for item in content_items(report)
        if item.ValueType == "NUM"
    }


def texts(report):
    return [str(getattr(item, "TextValue", "")) for item in content_items(report)]


def valid_for_dciodvfy(dataset, tmp_path):
    missing = dciodvfy_missing()
    if missing:
        pytest.skip(missing)
    assert dciodvfy_errors(as_bytes(dataset), tmp_path) == []


def test_the_prediction_goes_back_as_an_unverified_sr_and_an_overlay(pacs_scan, tmp_path):
    prediction = pacs_scan.prediction
    assert outbox.send_due() == {"sent": 2, "failed": 0}

    [report] = study_objects(pacs_scan, "SR")
    [overlay] = study_objects(pacs_scan, "OT")  # secondary capture
    assert report.StudyInstanceUID == overlay.StudyInstanceUID == pacs_scan.study_instance_uid
    assert report.PatientID == "MRN-SR-1" and report.VerificationFlag == "UNVERIFIED"
    assert coded_finding(report) == (PRESENT if prediction.label == "PNEUMONIA" else ABSENT)
    assert numbers(report) == {
        "Pneumonia probability": pytest.approx(prediction.probability, abs=1e-6),
        "Decision threshold": pytest.approx(prediction.threshold, abs=1e-6),
    }
    algorithm = texts(report)
    version = prediction.model_version
    assert "PneumoScan pneumonia classifier" in algorithm and version.version in algorithm
    assert f"model artifact sha256 {version.sha256}" in algorithm
    assert coded(report, "INTENDED-USE") == (["Yes"] if prediction.intended_use["within"] else ["No"])
    evidence = report.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == pacs_scan.sop_instance_uid
    assert overlay.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7" and overlay.PhotometricInterpretation == "RGB"
    assert overlay.pixel_array.shape[2] == 3 and overlay.pixel_array.std() > 0
    assert overlay.SourceImageSequence[0].ReferencedSOPInstanceUID == pacs_scan.sop_instance_uid
    valid_for_dciodvfy(report, tmp_path)
    valid_for_dciodvfy(overlay, tmp_path)
    assert outbox.send_due() == {"sent": 0, "failed": 0}


def test_reviews_go_back_as_verified_srs_and_a_correction_supersedes(pacs_scan, tmp_path):
    doctor = UserFactory(username="house", first_name="Gregory", last_name="House", role="doctor")
    first = clinical.review_scan(doctor, pacs_scan, "confirm")
    second = clinical.review_scan(doctor, pacs_scan, "override", note="Consolidation missed", supersedes=first)
    assert outbox.send_due() == {"sent": 4, "failed": 0}

    reports = {report.SOPInstanceUID: report for report in study_objects(pacs_scan, "SR")}
    items = {item.kind: item for item in OutboxItem.objects.exclude(review=second)}
    ai, confirmed = reports[items["ai_report"].sop_instance_uid], reports[items["doctor_report"].sop_instance_uid]
    corrected = reports[OutboxItem.objects.get(review=second).sop_instance_uid]
    assert len(reports) == 3

    for report, label in ((confirmed, first.final_label), (corrected, second.final_label)):
        assert report.VerificationFlag == "VERIFIED"
        assert report.VerifyingObserverSequence[0].VerifyingObserverName == "House^Gregory"
        assert coded_finding(report) == (PRESENT if label == "PNEUMONIA" else ABSENT)
        evidence = {
            sop.ReferencedSOPInstanceUID
            for series in report.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
            for sop in series.ReferencedSOPSequence
        }
        assert evidence == {pacs_scan.sop_instance_uid, ai.SOPInstanceUID}  # the AI's report it verified
        valid_for_dciodvfy(report, tmp_path)
    assert coded_finding(confirmed) != coded_finding(corrected)
    predecessors = corrected.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence
    assert [p.ReferencedSOPInstanceUID for p in predecessors] == [confirmed.SOPInstanceUID]
    assert "PredecessorDocumentsSequence" not in confirmed


def test_a_prediction_outside_the_intended_use_says_so_and_why(pacs_scan, tmp_path):
    from radiology.models import Prediction

    Prediction.objects.filter(scan=pacs_scan).update(
        intended_use={"within": False, "reasons": ["age", "image"], "score": 9.5}
    )
    assert outbox.send_due() == {"sent": 2, "failed": 0}
    [report] = study_objects(pacs_scan, "SR")
    assert coded(report, "INTENDED-USE") == ["No"]
    assert coded(report, "OUTSIDE-USE") == [
        "the patient's age is outside the ages the model was trained on",
        "the image does not look like the X-rays the model was trained on",
    ]
    valid_for_dciodvfy(report, tmp_path)


def test_uploaded_scans_send_nothing_to_the_pacs(radiographer, patient, model_version):
    from tests.support.images import chest_like_pixels, png_bytes

    scan = clinical.upload_scan(radiographer, patient, "chest.png", png_bytes(chest_like_pixels(seed=1))).scan
    assert predict_scan.apply(args=[scan.pk]).get() == "predicted"
    assert not OutboxItem.objects.exists()


def test_orthanc_down_during_a_send_loses_nothing_and_stores_nothing_twice(pacs_scan, orthanc, monkeypatch):
    orthanc.stop()
    assert outbox.send_due() == {"sent": 0, "failed": 1}
    waiting = OutboxItem.objects.get(last_error__contains="ConnectionError")
    assert waiting.sent_at is None and waiting.attempts == 1 and waiting.next_attempt_at > timezone.now()
    assert outbox.send_due() == {"sent": 0, "failed": 1}  # the other item: its turn, then the same outage
    assert outbox.send_due() == {"sent": 0, "failed": 0}  # both wait for their backoff

    orthanc.start()
    # The PACS stores the first object but its answer is lost: it is sent again, and stored once.
    real_store = outbox.store
    answers_lost = []

    def store_then_lose_the_answer(client, item):
        real_store(client, item)
        if not answers_lost:
            answers_lost.append(item.pk)
            raise ConnectionError("connection reset before the answer")

    monkeypatch.setattr(outbox, "store", store_then_lose_the_answer)
    OutboxItem.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert outbox.send_due() == {"sent": 0, "failed": 1}
    OutboxItem.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert outbox.send_due() == {"sent": 2, "failed": 0}

    assert len(study_objects(pacs_scan, "SR")) == 1 and len(study_objects(pacs_scan, "OT")) == 1
    assert len(orthanc.rest("/instances")) == 3  # the CR, the SR, the overlay: nothing twice
    assert all(item.sent_at and item.last_error == "" for item in OutboxItem.objects.all())


def test_retries_wait_longer_each_time_up_to_a_bound():
    assert [outbox.retry_delay(n).total_seconds() for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert outbox.retry_delay(50).total_seconds() == outbox.RETRY_MAX_SECONDS


def test_the_validator_finds_errors_in_a_broken_object(pacs_scan, tmp_path):
    """The dciodvfy checks above can fail: an SR without its VerificationFlag is an error."""
    from radiology.pacs.results import build

    missing = dciodvfy_missing()
    if missing:
        pytest.skip(missing)
    report = build(OutboxItem.objects.get(kind="ai_report"))
    assert dciodvfy_errors(as_bytes(report), tmp_path) == []
    del report.VerificationFlag
    assert any(
        "VerificationFlag" in line or "Verification Flag" in line
        for line in dciodvfy_errors(as_bytes(report), tmp_path)
    )


def test_the_overlay_lays_the_stored_heatmap_over_the_scan_as_the_review_page_does():
    import numpy as np

    from classifier.explain import overlay_rgba

    scan = np.tile(np.linspace(0, 255, 64, dtype=np.float32), (64, 1))
    heatmap = np.zeros((8, 8, 4), np.uint8)
    heatmap[:, :4] = (255, 0, 0, 255)  # left half: red, opaque; right half: transparent

    picture = overlay_rgba(scan, heatmap)

    assert picture.shape == (64, 64, 3)
    right = picture[:, 40:]
    assert (right[:, :, 0] == right[:, :, 1]).all() and (right[:, :, 1] == right[:, :, 2]).all()  # plain grey
    left = picture[:, :16].astype(int)
    assert (left[:, :, 0] > left[:, :, 1]).all()  # red laid over it, at most 45 % opaque
    assert (left[:, :, 1] >= np.rint(0.55 * scan[:, :16]).astype(int) - 1).all()


def test_two_senders_at_once_store_each_object_once(pacs_scan, orthanc):
    import threading

    start = threading.Barrier(2)
    results = []

    def sender():
        from django.db import connection

        start.wait()
        try:
            results.append(outbox.send_due())
        finally:
            connection.close()

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sum(result["sent"] for result in results) == 2 and sum(result["failed"] for result in results) == 0
    assert len(orthanc.rest("/instances")) == 3
    assert OutboxItem.objects.filter(sent_at__isnull=False, attempts=1).count() == 2


def test_an_item_taken_by_a_run_that_dies_is_due_again_after_its_hold(pacs_scan):
    taken = outbox.claim_next_due()
    assert taken is not None
    other = outbox.claim_next_due()
    assert other is not None and other.pk != taken.pk
    assert outbox.claim_next_due() is None  # both held: no other run takes them

    held = OutboxItem.objects.get(pk=taken.pk)
    assert held.sent_at is None and held.next_attempt_at > timezone.now() + timedelta(seconds=60)
    OutboxItem.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))  # the hold ran out
    assert outbox.send_due() == {"sent": 2, "failed": 0}
