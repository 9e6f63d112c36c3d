"""PACS ingest against a real Orthanc: CR/DX instances are pulled once each through the upload path."""

import threading

import pytest

from radiology.models import AuditEvent, Patient, Scan
from radiology.pacs import ingest
from radiology.pacs.ingest import poll_pacs
from radiology.pacs.models import PacsInstance, PollState
from tests.factories import PatientFactory
from tests.support.images import dicom_bytes
from tests.support.orthanc import modality_instance


def uid_of(data: bytes, keyword="SOPInstanceUID"):
    import io

    from pydicom import dcmread

    return str(dcmread(io.BytesIO(data), stop_before_pixels=True).get(keyword))


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """These tests look at what is stored; the prediction task itself is tested elsewhere."""
    sent = []
    monkeypatch.setattr("radiology.actions.clinical.enqueue_prediction", sent.append)
    return sent


@pytest.mark.django_db(transaction=True)
def test_a_cr_instance_is_ingested_once_with_a_patient_made_from_its_details(orthanc, no_broker):
    instance = modality_instance(seed=1, patient_id="MRN-CR-1", patient_name="Lovelace^Ada", birth_date="20190310")
    orthanc.store(instance)

    report = poll_pacs()

    assert report.error == "" and report.outcomes == {"ingested": 1}
    scan = Scan.objects.get()
    assert scan.source == Scan.Source.PACS and scan.image_format == "dicom" and scan.status == "queued"
    assert scan.sop_instance_uid == uid_of(instance)
    assert scan.study_instance_uid == uid_of(instance, "StudyInstanceUID")
    assert scan.series_instance_uid == uid_of(instance, "SeriesInstanceUID")
    assert (scan.patient.mrn, scan.patient.name, str(scan.patient.birth_date), scan.patient.sex) == (
        "MRN-CR-1",
        "Ada Lovelace",
        "2019-03-10",
        "F",
    )
    assert no_broker == [scan.pk]
    assert scan.uploaded_by.username == ingest.PACS_ACCOUNT and not scan.uploaded_by.has_usable_password()
    assert AuditEvent.objects.filter(action="scan.uploaded", object_id=str(scan.pk)).count() == 1
    assert PollState.current().last_success_at is not None

    again = poll_pacs()
    assert again.outcomes == {} and Scan.objects.count() == 1 and no_broker == [scan.pk]


@pytest.mark.django_db(transaction=True)
def test_the_api_shows_where_a_scan_came_from_and_its_dicom_identity(orthanc, radiographer):
    from tests.conftest import logged_in

    instance = modality_instance(seed=13, patient_id="MRN-API-1")
    orthanc.store(instance)
    poll_pacs()
    scan = Scan.objects.get()

    record = logged_in(radiographer).get(f"/api/v1/scans/{scan.pk}/").json()

    assert record["source"] == "pacs"
    assert record["sop_instance_uid"] == uid_of(instance)
    assert record["study_instance_uid"] == uid_of(instance, "StudyInstanceUID")
    assert record["series_instance_uid"] == uid_of(instance, "SeriesInstanceUID")


@pytest.mark.django_db(transaction=True)
def test_dx_instances_of_a_known_patient_join_their_record(orthanc):
    patient = PatientFactory(mrn="MRN-DX-1", name="Jane Doe", sex="F", birth_date="2020-01-15")
    orthanc.store(modality_instance(seed=2, patient_id="MRN-DX-1", modality="DX"))
    assert poll_pacs().outcomes == {"ingested": 1}
    assert Scan.objects.get().patient == patient and Patient.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_patient_conflicts_are_recorded_not_guessed(orthanc):
    PatientFactory(mrn="MRN-CONFLICT", name="John Smith", sex="M", birth_date="2010-05-05")
    orthanc.store(
        modality_instance(seed=3, patient_id="MRN-CONFLICT", patient_name="Doe^Jane", sex="F"),
        modality_instance(seed=4, patient_id=""),
        modality_instance(seed=5, patient_id="MRN-NEW", birth_date=""),
    )

    assert poll_pacs().outcomes == {"conflict": 3}

    assert Scan.objects.count() == 0 and Patient.objects.count() == 1
    reasons = sorted(PacsInstance.objects.values_list("reason", flat=True))
    by_patient_id = dict(PacsInstance.objects.values_list("patient_id", "reason"))
    assert by_patient_id["MRN-CONFLICT"].startswith("The instance's name, birth date, sex differ from those")
    assert not any("Smith" in r or "Doe" in r or "MRN-" in r for r in reasons)  # the messages name no patient
    assert any("has no Patient ID" in r for r in reasons)
    assert (
        by_patient_id["MRN-NEW"].startswith("No patient has the instance's Patient ID")
        and "birth date" in by_patient_id["MRN-NEW"]
    )
    assert AuditEvent.objects.filter(action="pacs.conflict").count() == 3
    assert poll_pacs().outcomes == {}  # reported once, not retried at every poll


@pytest.mark.django_db(transaction=True)
def test_patient_details_that_make_no_valid_record_are_a_conflict(orthanc):
    orthanc.store(modality_instance(seed=14, patient_id="MRN-LONG", patient_name="X" * 150 + "^" + "Y" * 100))

    assert poll_pacs().outcomes == {"conflict": 1}

    assert "at most 200 characters" in PacsInstance.objects.get().reason
    assert not Patient.objects.exists() and not Scan.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_ct_and_lateral_instances_are_not_taken_for_frontal_chest_xrays(orthanc):
    orthanc.store(
        modality_instance(seed=6, modality="CT", patient_id="MRN-CT"),
        modality_instance(seed=7, view_position="LL", patient_id="MRN-LAT"),
        modality_instance(seed=8, body_part="HAND", patient_id="MRN-HAND"),
        modality_instance(seed=9, view_position="AP", patient_id="MRN-AP"),
    )

    assert poll_pacs().outcomes == {"skipped": 2, "ingested": 1}

    assert list(Scan.objects.values_list("patient__mrn", flat=True)) == ["MRN-AP"]
    skipped = dict(PacsInstance.objects.filter(outcome="skipped").values_list("patient_id", "reason"))
    assert skipped == {
        "MRN-LAT": "View position LL is a lateral view, not a frontal (PA or AP) one.",
        "MRN-HAND": "Body part HAND is not the chest.",
    }
    assert not PacsInstance.objects.filter(patient_id="MRN-CT").exists()  # a CT series is never even listed
    assert ingest.frontal_chest_xray_refusal({"modality": "CT"}).startswith("Modality CT is not a radiograph")


@pytest.mark.django_db(transaction=True)
def test_an_instance_uploaded_by_hand_first_is_not_stored_twice(orthanc, radiographer, client):
    from radiology.actions.clinical import upload_scan

    instance = modality_instance(seed=10, patient_id="MRN-BOTH", patient_name="Doe^Jane")
    patient = PatientFactory(mrn="MRN-BOTH", name="Jane Doe", sex="F", birth_date="2020-01-15")
    uploaded = upload_scan(radiographer, patient, "chest.dcm", instance).scan
    orthanc.store(instance)

    assert poll_pacs().outcomes == {"ingested": 1}

    assert Scan.objects.get() == uploaded and uploaded.source == "upload"
    assert PacsInstance.objects.get().scan == uploaded


@pytest.mark.django_db(transaction=True)
def test_the_same_dicom_instance_for_another_patient_is_refused_on_upload(radiographer):
    from radiology.actions.clinical import upload_scan
    from radiology.ingest import RejectedUpload

    anonymous = dicom_bytes(seed=12, patient_id="")
    upload_scan(radiographer, PatientFactory(), "a.dcm", anonymous)
    with pytest.raises(RejectedUpload, match="already stored as scan"):
        upload_scan(radiographer, PatientFactory(), "a.dcm", anonymous)
    assert Scan.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_pollers_at_once_ingest_each_instance_once(orthanc):
    orthanc.store(*[modality_instance(seed=20 + n, patient_id="MRN-TWICE", patient_name="Doe^Jane") for n in range(4)])
    start = threading.Barrier(2)
    reports = []

    def poller():
        from django.db import connection

        start.wait()
        try:
            reports.append(poll_pacs())
        finally:
            connection.close()

    threads = [threading.Thread(target=poller) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert [r.error for r in reports] == ["", ""]
    assert sum(r.outcomes["ingested"] for r in reports) == 4
    assert Scan.objects.count() == 4 and PacsInstance.objects.count() == 4
    assert Patient.objects.filter(mrn="MRN-TWICE").count() == 1


@pytest.mark.django_db(transaction=True)
def test_orthanc_stopped_during_a_poll_loses_nothing_and_duplicates_nothing(orthanc, monkeypatch):
    orthanc.store(*[modality_instance(seed=30 + n, patient_id=f"MRN-OUT-{n}") for n in range(3)])
    real_ingest = ingest.ingest_instance

    def ingest_then_pacs_goes_down(*args):
        real_ingest(*args)
        orthanc.stop()  # the PACS goes away after the first instance of this poll

    monkeypatch.setattr(ingest, "ingest_instance", ingest_then_pacs_goes_down)
    interrupted = poll_pacs()
    monkeypatch.setattr(ingest, "ingest_instance", real_ingest)

    assert interrupted.outcomes == {"ingested": 1} and "ConnectionError" in interrupted.error
    state = PollState.current()
    assert "ConnectionError" in state.last_error and state.last_success_at is None
    assert poll_pacs().error  # still down: nothing changes
    assert Scan.objects.count() == 1

    orthanc.start()
    assert poll_pacs().outcomes == {"ingested": 2}
    assert sorted(Scan.objects.values_list("patient__mrn", flat=True)) == ["MRN-OUT-0", "MRN-OUT-1", "MRN-OUT-2"]
    assert PollState.current().last_success_at is not None


@pytest.mark.django_db(transaction=True)
def test_an_instance_the_pacs_fails_to_send_does_not_hold_up_the_others(orthanc, monkeypatch):
    import requests

    broken = modality_instance(seed=40, patient_id="MRN-BROKEN")
    orthanc.store(broken, modality_instance(seed=41, patient_id="MRN-FINE"))
    client_class = type(ingest.pacs_client())
    real_retrieve = client_class.retrieve_instance

    def retrieve(self, study_uid, series_uid, sop_uid, **kwargs):
        if sop_uid == uid_of(broken):
            raise requests.HTTPError("500 Server Error: Internal Server Error")
        return real_retrieve(self, study_uid, series_uid, sop_uid, **kwargs)

    monkeypatch.setattr(client_class, "retrieve_instance", retrieve)
    report = poll_pacs()
    assert report.outcomes == {"ingested": 1} and f"Instance {uid_of(broken)} could not be ingested" in report.error
    assert uid_of(broken) in PollState.current().last_error and PollState.current().last_success_at is None

    monkeypatch.setattr(client_class, "retrieve_instance", real_retrieve)
    assert poll_pacs().outcomes == {"ingested": 1}
    assert sorted(Scan.objects.values_list("patient__mrn", flat=True)) == ["MRN-BROKEN", "MRN-FINE"]


@pytest.mark.django_db(transaction=True)
def test_a_known_series_is_not_listed_again(orthanc, monkeypatch):
    orthanc.store(modality_instance(seed=42, patient_id="MRN-SEEN"))
    assert poll_pacs().outcomes == {"ingested": 1}
    listed = []
    monkeypatch.setattr(ingest, "ingest_series", lambda client, series, report: listed.append(series))
    poll_pacs()
    assert listed == []  # Orthanc says how many instances the series holds: all known


@pytest.mark.django_db(transaction=True)
def test_poll_study_days_limits_the_walk_to_recent_study_dates(orthanc, settings):
    from django.utils import timezone

    settings.PACS_POLL_STUDY_DAYS = 3
    today = timezone.localdate()
    orthanc.store(
        modality_instance(seed=50, patient_id="MRN-RECENT", study_date=f"{today:%Y%m%d}"),
        modality_instance(seed=51, patient_id="MRN-OLD", study_date="20190101"),
    )
    assert poll_pacs().outcomes == {"ingested": 1}
    assert list(Scan.objects.values_list("patient__mrn", flat=True)) == ["MRN-RECENT"]

    settings.PACS_POLL_STUDY_DAYS = 0  # the whole archive
    assert poll_pacs().outcomes == {"ingested": 1}
