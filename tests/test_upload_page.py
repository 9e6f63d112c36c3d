"""Uploading through the page: several formats at once, refusals, duplicates, DICOM patients, status."""

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from radiology.models import AuditEvent, Patient, Scan
from tests.factories import PatientFactory, ScanFactory
from tests.support.images import dicom_bytes, jpeg_bytes, png_bytes


def upload_file(name, data):
    return SimpleUploadedFile(name, data)


def stored_files(media_root):
    root = Path(media_root)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def page_messages(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


def post_upload(client, data):
    return client.post(reverse("upload"), data, follow=True)


def test_png_jpeg_and_dicom_in_one_post(radiographer_client, patient, media_root, django_capture_on_commit_callbacks):
    files = [
        upload_file("front.png", png_bytes(seed=1)),
        upload_file("side.jpg", jpeg_bytes(seed=2)),
        upload_file("chest.dcm", dicom_bytes(seed=3, patient_id=patient.mrn)),
    ]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = radiographer_client.post(reverse("upload"), {"patient": patient.pk, "files": files})
    assert response.status_code == 302
    scans = list(Scan.objects.filter(patient=patient).order_by("pk"))
    assert [s.image_format for s in scans] == ["png", "jpeg", "dicom"]
    assert [s.original_filename for s in scans] == ["front.png", "side.jpg", "chest.dcm"]
    assert response["Location"] == reverse("scan_status") + "?ids=" + ",".join(str(s.pk) for s in scans)
    assert len(callbacks) == 3  # one prediction task per scan, sent after the commit
    assert all(s.enqueued_at is not None for s in Scan.objects.filter(patient=patient))  # the real broker took them
    assert len(stored_files(media_root)) == 3

    status_page = radiographer_client.get(response["Location"])
    for scan in scans:
        assert f'data-scan-id="{scan.pk}"'.encode() in status_page.content
    assert b"js/scan_status.js" in status_page.content


def test_a_refused_file_says_why_and_stores_nothing(radiographer_client, patient, media_root):
    response = post_upload(
        radiographer_client,
        {
            "patient": patient.pk,
            "files": [
                upload_file("notes.png", b"this is a text file, not an image"),
                upload_file("good.png", png_bytes(seed=4)),
            ],
        },
    )
    texts = page_messages(response)
    assert any("notes.png: refused, nothing stored." in t and "not a PNG, JPEG or DICOM" in t for t in texts)
    assert list(Scan.objects.values_list("original_filename", flat=True)) == ["good.png"]
    assert len(stored_files(media_root)) == 1


def test_only_refused_files_leave_no_row_and_no_file(radiographer_client, patient, media_root):
    truncated = png_bytes(seed=5)[:60]
    response = post_upload(radiographer_client, {"patient": patient.pk, "files": [upload_file("cut.png", truncated)]})
    assert response.status_code == 400
    assert any("cut.png: refused" in t and "damaged or truncated" in t for t in page_messages(response))
    assert not Scan.objects.exists()
    assert stored_files(media_root) == []
    assert not AuditEvent.objects.filter(action="scan.uploaded").exists()


def test_the_same_file_twice_is_flagged_not_duplicated(radiographer_client, patient, media_root):
    data = png_bytes(seed=6)
    post_upload(radiographer_client, {"patient": patient.pk, "files": [upload_file("a.png", data)]})
    response = post_upload(radiographer_client, {"patient": patient.pk, "files": [upload_file("again.png", data)]})
    scan = Scan.objects.get()
    assert any(t.startswith("again.png: duplicate") and f"scan {scan.pk}" in t for t in page_messages(response))
    assert len(stored_files(media_root)) == 1
    assert response.redirect_chain[-1][0].endswith(f"?ids={scan.pk}")


def test_a_new_mrn_with_details_creates_the_patient(radiographer_client):
    response = post_upload(
        radiographer_client,
        {
            "mrn": "NEW-7",
            "name": "Ada Brown",
            "birth_date": "2019-05-06",
            "sex": "F",
            "files": [upload_file("x.png", png_bytes(seed=7))],
        },
    )
    patient = Patient.objects.get(mrn="NEW-7")
    assert Scan.objects.get().patient == patient
    assert AuditEvent.objects.filter(action="patient.created", object_id=str(patient.pk)).exists()
    assert any(t == "Patient created." for t in page_messages(response))


def test_an_existing_mrn_picks_that_patient(radiographer_client, patient):
    post_upload(radiographer_client, {"mrn": patient.mrn, "files": [upload_file("x.png", png_bytes(seed=8))]})
    assert Scan.objects.get().patient == patient
    assert Patient.objects.count() == 1


def test_an_unknown_mrn_without_details_asks_for_them(radiographer_client, media_root):
    response = post_upload(radiographer_client, {"mrn": "NOPE", "files": [upload_file("x.png", png_bytes(seed=9))]})
    assert response.status_code == 400
    assert b"No patient has MRN NOPE: fill in their details to create them." in response.content
    assert b"Needed to create a new patient." in response.content
    assert not Scan.objects.exists() and not Patient.objects.exists()
    assert stored_files(media_root) == []


def test_a_dicom_alone_matches_its_patient_by_mrn(radiographer_client):
    existing = PatientFactory(mrn="MRN-DCM-1")
    response = post_upload(radiographer_client, {"files": [upload_file("ct.dcm", dicom_bytes(patient_id="MRN-DCM-1"))]})
    assert Scan.objects.get().patient == existing
    assert response.status_code == 200


def test_a_dicom_of_an_unknown_patient_prefills_the_new_patient(radiographer_client, media_root):
    data = dicom_bytes(patient_id="MRN-NEW-9", patient_name="Doe^Jane", birth_date="20200115", sex="F")
    response = post_upload(radiographer_client, {"files": [upload_file("x.dcm", data)]})
    assert response.status_code == 400
    page = response.content.decode()
    assert 'value="MRN-NEW-9"' in page and 'value="Jane Doe"' in page and 'value="2020-01-15"' in page
    assert '<option value="F" selected>' in page
    assert any("No patient has MRN MRN-NEW-9 (read from the DICOM file)" in t for t in page_messages(response))
    assert not Scan.objects.exists() and not Patient.objects.exists()
    assert stored_files(media_root) == []

    # The radiographer checks the details and sends the file again: the patient is created.
    offered = {"mrn": "MRN-NEW-9", "name": "Jane Doe", "birth_date": "2020-01-15", "sex": "F"}
    post_upload(radiographer_client, {**offered, "files": [upload_file("x.dcm", data)]})
    assert Scan.objects.get().patient == Patient.objects.get(mrn="MRN-NEW-9", name="Jane Doe")


def test_a_dicom_of_another_patient_is_refused(radiographer_client, patient):
    response = post_upload(
        radiographer_client,
        {
            "patient": patient.pk,
            "files": [
                upload_file("other.dcm", dicom_bytes(patient_id="SOMEONE-ELSE")),
                upload_file("ok.png", png_bytes(seed=10)),
            ],
        },
    )
    assert any(
        t.startswith("other.dcm: refused") and "names another patient" in t and "SOMEONE-ELSE" not in t
        for t in page_messages(response)
    )
    assert list(Scan.objects.values_list("original_filename", flat=True)) == ["ok.png"]


def test_no_patient_and_no_dicom_asks_for_the_mrn(radiographer_client):
    response = post_upload(radiographer_client, {"files": [upload_file("x.png", png_bytes(seed=11))]})
    assert response.status_code == 400
    assert b"Enter the patient&#x27;s MRN" in response.content
    assert not Scan.objects.exists()


def test_no_file_is_a_form_error(radiographer_client, patient):
    response = post_upload(radiographer_client, {"patient": patient.pk})
    assert response.status_code == 400
    assert b"Choose at least one X-ray file." in response.content


def test_upload_form_is_labelled_and_takes_several_files(radiographer_client, patient):
    page = radiographer_client.get(reverse("upload") + f"?patient={patient.pk}").content.decode()
    assert 'enctype="multipart/form-data"' in page
    assert 'type="file" name="files"' in page and "multiple" in page and 'for="id_files"' in page
    assert patient.name in page


def test_status_json_reports_each_scan(radiographer_client):
    queued, failed = ScanFactory(status="queued"), ScanFactory(status="failed", failure_reason="model missing")
    response = radiographer_client.get(reverse("scan_status_json") + f"?ids={queued.pk},{failed.pk}")
    assert response.json() == {
        "scans": [
            {"id": queued.pk, "status": "queued", "status_label": "Queued", "failure_reason": "", "final": False},
            {
                "id": failed.pk,
                "status": "failed",
                "status_label": "Failed",
                "failure_reason": "model missing",
                "final": True,
            },
        ]
    }
    Scan.objects.filter(pk=queued.pk).update(status="predicted")
    again = radiographer_client.get(reverse("scan_status_json") + f"?ids={queued.pk}")
    assert again.json()["scans"][0]["status"] == "predicted"


@pytest.mark.parametrize("ids", ["1,x", "1;2", ",".join(["1"] * 201)])
def test_status_json_refuses_malformed_ids(radiographer_client, ids):
    assert radiographer_client.get(reverse("scan_status_json") + f"?ids={ids}").status_code == 400


def test_patients_search_pagination_and_create(radiographer_client):
    for n in range(27):
        PatientFactory(name=f"Person {n:02d}", mrn=f"P{n:03d}")
    PatientFactory(name="Zed Unique", mrn="Z-1")
    first = radiographer_client.get(reverse("patient_list"))
    assert b"Page 1 of 2" in first.content
    found = radiographer_client.post(reverse("patient_list"), {"q": "unique"}, follow=True)
    assert b"Zed Unique" in found.content and b"Person 01" not in found.content
    nobody = radiographer_client.post(reverse("patient_list"), {"q": "nobody"}, follow=True)
    assert b"No patient matches" in nobody.content

    created = radiographer_client.post(
        reverse("patient_create"), {"mrn": "C-1", "name": "Cy Green", "birth_date": "2018-02-03", "sex": "M"}
    )
    patient = Patient.objects.get(mrn="C-1")
    assert created["Location"] == reverse("patient_detail", args=[patient.pk])
    taken = radiographer_client.post(
        reverse("patient_create"), {"mrn": "C-1", "name": "Other", "birth_date": "2018-02-03", "sex": "M"}
    )
    assert taken.status_code == 400 and b"A patient with this MRN already exists." in taken.content
