"""Scans over the API: upload (the page's validation and on-commit enqueueing), list, detail, files, re-queue."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from radiology.models import AuditEvent, Review, Scan
from tests.factories import PatientFactory, PredictionFactory, ScanFactory, UserFactory
from tests.support.api import error_of, token_client
from tests.support.images import dicom_bytes, jpeg_bytes, png_bytes

URL = "/api/v1/scans/"


def upload(client, patient_id, data, name="chest.png"):
    return client.post(URL, {"patient": patient_id, "image": SimpleUploadedFile(name, data)}, format="multipart")


@pytest.fixture
def sent_tasks(monkeypatch):
    """The scan ids handed to the task queue."""
    from radiology.tasks import predict_scan

    sent = []
    monkeypatch.setattr(predict_scan, "apply_async", lambda args, **kwargs: sent.append(args[0]))
    return sent


@pytest.mark.django_db
@pytest.mark.parametrize("data, image_format", [(png_bytes(), "png"), (jpeg_bytes(), "jpeg")])
def test_upload_stores_the_scan_and_queues_it_after_commit(
    radiographer, patient, sent_tasks, django_capture_on_commit_callbacks, data, image_format
):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(token_client(radiographer), patient.pk, data)

    assert response.status_code == 201
    body = response.json()
    scan = Scan.objects.get(pk=body["id"])
    assert body["status"] == "queued" and body["duplicate"] is False and "prediction" not in body
    assert (scan.patient, scan.image_format, scan.uploaded_by) == (patient, image_format, radiographer)
    assert sent_tasks == [scan.pk]
    assert AuditEvent.objects.filter(action="scan.uploaded", object_id=str(scan.pk)).exists()


@pytest.mark.django_db
def test_a_dicom_file_of_this_patient_is_accepted(radiographer):
    patient = PatientFactory(mrn="MRN-DCM-1")

    response = upload(token_client(radiographer), patient.pk, dicom_bytes(patient_id="MRN-DCM-1"), "x.dcm")

    assert response.status_code == 201
    assert response.json()["image_format"] == "dicom"


@pytest.mark.django_db
def test_a_dicom_file_naming_another_patient_is_refused(radiographer):
    patient = PatientFactory(mrn="MRN-OTHER")

    response = upload(token_client(radiographer), patient.pk, dicom_bytes(patient_id="MRN-DCM-1"), "x.dcm")

    assert response.status_code == 400
    assert "names another patient" in error_of(response)["fields"]["image"][0]
    assert not Scan.objects.exists()


@pytest.mark.django_db
def test_the_same_file_again_returns_the_existing_scan_flagged_duplicate(radiographer, patient, media_root):
    client = token_client(radiographer)
    first = upload(client, patient.pk, png_bytes()).json()

    again = upload(client, patient.pk, png_bytes(), name="renamed.png")

    assert again.status_code == 200
    assert again.json()["id"] == first["id"] and again.json()["duplicate"] is True
    assert Scan.objects.count() == 1
    assert len(list(media_root.rglob("*.png"))) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "data, name, reason",
    [
        (b"this is a text file\n", "notes.png", "not a PNG, JPEG or DICOM"),
        (b"", "empty.png", "empty"),
        (png_bytes()[:60], "truncated.png", "damaged or truncated"),
        (dicom_bytes(with_pixels=False), "report.dcm", "no pixel data"),
    ],
)
def test_refused_files_name_the_image_field_and_store_nothing(radiographer, patient, media_root, data, name, reason):
    response = upload(token_client(radiographer), patient.pk, data, name)

    assert response.status_code == 400
    assert reason in error_of(response)["fields"]["image"][0]
    assert not Scan.objects.exists()
    assert not [path for path in media_root.rglob("*") if path.is_file()]


@pytest.mark.django_db
def test_a_file_above_the_size_limit_is_refused(radiographer, patient, settings):
    settings.MAX_UPLOAD_BYTES = 1024

    response = upload(token_client(radiographer), patient.pk, png_bytes())

    assert response.status_code == 400
    assert "larger than" in error_of(response)["fields"]["image"][0]


@pytest.mark.django_db
def test_a_path_in_the_file_name_is_not_kept(radiographer, patient):
    response = upload(token_client(radiographer), patient.pk, png_bytes(), name="../../etc/x.png")

    assert response.status_code == 201
    assert response.json()["original_filename"] == "x.png"


@pytest.mark.django_db
def test_an_unknown_patient_is_a_404_naming_the_field(radiographer):
    form = {"patient": 999999, "image": SimpleUploadedFile("chest.png", png_bytes())}

    response = token_client(radiographer).post(URL, form, format="multipart")

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found" and "patient" in error_of(response)["fields"]
    assert not Scan.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "form, field",
    [
        ({"patient": "abc", "image": "file"}, "patient"),
        ({"image": "file"}, "patient"),
        ({"patient": "own"}, "image"),
        ({"patient": "own", "image": "not a file"}, "image"),
    ],
)
def test_missing_or_wrong_fields_are_named(radiographer, patient, form, field):
    form = {key: (patient.pk if value == "own" else value) for key, value in form.items()}
    if form.get("image") == "file":
        form["image"] = SimpleUploadedFile("chest.png", png_bytes())

    response = token_client(radiographer).post(URL, form, format="multipart")

    assert response.status_code == 400
    assert field in error_of(response)["fields"]
    assert not Scan.objects.exists()


@pytest.mark.django_db
def test_json_instead_of_a_file_is_refused(radiographer, patient):
    response = token_client(radiographer).post(URL, {"patient": patient.pk, "image": "aGVsbG8="}, format="json")

    assert response.status_code == 400
    assert "image" in error_of(response)["fields"]


@pytest.mark.django_db
def test_list_filters_by_patient_status_and_upload_time(radiographer):
    now = timezone.now()
    mine = PatientFactory()
    old = ScanFactory(patient=mine, status="failed", uploaded_at=now - timedelta(days=3))
    recent = ScanFactory(patient=mine, status="queued", uploaded_at=now - timedelta(hours=1))
    ScanFactory(status="queued")
    client = token_client(radiographer)

    def ids(**params):
        return [scan["id"] for scan in client.get(URL, params).json()["results"]]

    assert ids(patient=mine.pk) == [recent.pk, old.pk]
    assert ids(patient=mine.pk, status="failed") == [old.pk]
    assert ids(patient=mine.pk, uploaded_after=(now - timedelta(days=1)).isoformat()) == [recent.pk]
    assert ids(patient=mine.pk, uploaded_before=(now - timedelta(days=1)).isoformat()) == [old.pk]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params, field",
    [
        ({"status": "lost"}, "status"),
        ({"patient": "x"}, "patient"),
        ({"uploaded_after": "yesterday"}, "uploaded_after"),
    ],
)
def test_invalid_filters_are_a_400_naming_them(radiographer, params, field):
    response = token_client(radiographer).get(URL, params)

    assert response.status_code == 400
    assert field in error_of(response)["fields"]


@pytest.mark.django_db
def test_detail_has_the_prediction_with_a_heatmap_link_and_the_reviews(doctor):
    prediction = PredictionFactory(probability=0.91)
    scan = prediction.scan
    Review.objects.create(scan=scan, doctor=doctor, decision="confirm", final_label="PNEUMONIA")
    scan.status = "reviewed"
    scan.save()

    body = token_client(doctor).get(f"{URL}{scan.pk}/").json()

    assert body["status"] == "reviewed"
    assert body["prediction"]["probability"] == 0.91
    assert body["prediction"]["label"] == "PNEUMONIA"
    assert body["prediction"]["threshold"] == 0.5
    assert body["prediction"]["model_version"] == prediction.model_version.version
    assert body["prediction"]["heatmap_url"] == f"http://testserver{URL}{scan.pk}/heatmap/"
    assert [(r["decision"], r["final_label"], r["doctor"]) for r in body["reviews"]] == [
        ("confirm", "PNEUMONIA", "doctor1")
    ]


@pytest.mark.django_db
def test_a_queued_scan_has_no_prediction_yet(doctor):
    scan = ScanFactory()

    body = token_client(doctor).get(f"{URL}{scan.pk}/").json()

    assert body["status"] == "queued" and body["prediction"] is None and body["reviews"] == []


@pytest.mark.django_db
def test_the_image_is_served_to_allowed_roles_and_each_view_audited(radiographer, doctor, patient):
    data = png_bytes()
    scan_id = upload(token_client(radiographer), patient.pk, data).json()["id"]

    for user in (radiographer, doctor):
        response = token_client(user).get(f"{URL}{scan_id}/image/")
        assert response.status_code == 200
        assert response["Content-Type"] == "image/png"
        assert response["Cache-Control"] == "private, no-store"
        assert b"".join(response.streaming_content) == data
    viewers = AuditEvent.objects.filter(action="scan.image_viewed", object_id=str(scan_id)).values_list(
        "actor__username", flat=True
    )
    assert sorted(viewers) == ["doctor1", "radiographer1"]


@pytest.mark.django_db
def test_the_heatmap_is_for_doctors_and_exists_once_predicted(doctor, radiographer):
    predicted = PredictionFactory().scan
    queued = ScanFactory()
    client = token_client(doctor)

    response = client.get(f"{URL}{predicted.pk}/heatmap/")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == b"png"
    assert AuditEvent.objects.filter(action="scan.heatmap_viewed", object_id=str(predicted.pk), actor=doctor).exists()
    assert client.get(f"{URL}{queued.pk}/heatmap/").status_code == 404
    assert token_client(radiographer).get(f"{URL}{predicted.pk}/heatmap/").status_code == 403


@pytest.mark.django_db
def test_an_admin_requeues_a_failed_scan(admin_user, sent_tasks, django_capture_on_commit_callbacks):
    scan = ScanFactory(status="failed", failure_reason="Model missing")

    with django_capture_on_commit_callbacks(execute=True):
        response = token_client(admin_user).post(f"{URL}{scan.pk}/requeue/")

    assert response.status_code == 200
    assert response.json()["status"] == "queued" and response.json()["failure_reason"] == ""
    assert sent_tasks == [scan.pk]
    assert AuditEvent.objects.filter(action="scan.requeued", object_id=str(scan.pk), actor=admin_user).exists()


@pytest.mark.django_db
def test_a_predicted_scan_cannot_be_requeued(admin_user):
    scan = PredictionFactory().scan

    response = token_client(admin_user).post(f"{URL}{scan.pk}/requeue/")

    assert response.status_code == 409
    assert error_of(response)["code"] == "conflict"
    assert "cannot be re-queued" in error_of(response)["message"]


ROLE_STATUS = {
    # role: (list/detail, upload, image, heatmap, requeue)
    "radiographer": (200, 201, 200, 403, 403),
    "doctor": (200, 403, 200, 200, 403),
    "admin": (200, 403, 403, 403, 200),
    None: (403, 403, 403, 403, 403),
}


@pytest.mark.django_db
@pytest.mark.parametrize("role", list(ROLE_STATUS))
def test_roles(role, patient, sent_tasks):
    see, upload_status, image, heatmap, requeue = ROLE_STATUS[role]
    scan = PredictionFactory().scan
    failed = ScanFactory(status="failed")
    client = token_client(UserFactory(role=role))

    assert client.get(URL).status_code == see
    assert client.get(f"{URL}{scan.pk}/").status_code == see
    assert upload(client, patient.pk, png_bytes()).status_code == upload_status
    assert client.get(f"{URL}{scan.pk}/image/").status_code == image
    assert client.get(f"{URL}{scan.pk}/heatmap/").status_code == heatmap
    assert client.post(f"{URL}{failed.pk}/requeue/").status_code == requeue


@pytest.mark.django_db
def test_anonymous_gets_401(patient):
    scan = PredictionFactory().scan
    client = APIClient()

    for response in (
        client.get(URL),
        client.get(f"{URL}{scan.pk}/"),
        upload(client, patient.pk, png_bytes()),
        client.get(f"{URL}{scan.pk}/image/"),
        client.get(f"{URL}{scan.pk}/heatmap/"),
        client.post(f"{URL}{scan.pk}/requeue/"),
    ):
        assert response.status_code == 401
        assert error_of(response)["code"] == "not_authenticated"
    assert not AuditEvent.objects.filter(action__in=["scan.image_viewed", "scan.heatmap_viewed"]).exists()
