"""The API finds an upload's patient as the upload page does: the id given, else the MRN given,
else the Patient ID the DICOM file carries; nothing is stored when no patient matches."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from radiology.models import Scan
from tests.factories import PatientFactory
from tests.support.api import error_of, token_client
from tests.support.images import dicom_bytes, png_bytes

URL = "/api/v1/scans/"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def unsent(monkeypatch):
    from radiology.actions import clinical

    monkeypatch.setattr(clinical, "enqueue_prediction", lambda scan_id: None)


def post(user, **fields):
    return token_client(user).post(URL, fields, format="multipart")


def dicom_file(patient_id):
    return SimpleUploadedFile("chest.dcm", dicom_bytes(patient_id=patient_id), content_type="application/dicom")


def png_file():
    return SimpleUploadedFile("chest.png", png_bytes(), content_type="image/png")


def test_a_dicom_without_a_patient_goes_to_the_patient_it_names(radiographer):
    named = PatientFactory(mrn="MRN-DCM-7")

    response = post(radiographer, image=dicom_file("MRN-DCM-7"))

    assert response.status_code == 201, response.content
    assert response.json()["patient"] == named.pk
    assert Scan.objects.get().patient == named


def test_a_dicom_naming_nobody_known_is_refused_and_nothing_is_stored(radiographer, media_root):
    response = post(radiographer, image=dicom_file("MRN-UNKNOWN"))

    assert response.status_code == 404
    assert "No patient has the patient ID read from the DICOM file as MRN" in error_of(response)["fields"]["patient"][0]
    assert not Scan.objects.exists()
    assert not [path for path in media_root.rglob("*") if path.is_file()]


def test_an_mrn_finds_the_patient_of_a_png(radiographer):
    patient = PatientFactory(mrn="MRN-PNG-1")

    response = post(radiographer, mrn=" MRN-PNG-1 ", image=png_file())

    assert response.status_code == 201
    assert Scan.objects.get().patient == patient


def test_a_png_without_patient_or_mrn_is_refused(radiographer):
    response = post(radiographer, image=png_file())

    assert response.status_code == 400
    assert "only DICOM files name their patient" in error_of(response)["fields"]["patient"][0]
    assert not Scan.objects.exists()


def test_a_dicom_naming_another_patient_than_the_one_given_is_refused(radiographer):
    chosen = PatientFactory(mrn="MRN-CHOSEN")
    PatientFactory(mrn="MRN-DCM-8")

    response = post(radiographer, patient=chosen.pk, image=dicom_file("MRN-DCM-8"))

    assert response.status_code == 400
    assert "The DICOM file names another patient" in error_of(response)["fields"]["image"][0]
    assert not Scan.objects.exists()
