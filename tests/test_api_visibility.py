"""What each role sees of a scan through the API matches its pages: radiographers and admins
the status, integration accounts the prediction and final labels, doctors the notes too."""

import pytest

from radiology.models import Review
from tests.factories import PredictionFactory
from tests.support.api import token_client

URL = "/api/v1/scans/"
NOTE = "Retrocardiac opacity on the lateral view."


@pytest.fixture
def reviewed_scan(doctor):
    prediction = PredictionFactory(probability=0.91)
    scan = prediction.scan
    Review.objects.create(scan=scan, doctor=doctor, decision="override", final_label="NORMAL", note=NOTE)
    scan.status = "reviewed"
    scan.save()
    return scan


def seen_by(user, scan):
    detail = token_client(user).get(f"{URL}{scan.pk}/")
    listed = token_client(user).get(URL)
    assert detail.status_code == 200 and listed.status_code == 200
    (entry,) = listed.json()["results"]
    assert entry == detail.json()  # the list shows no more than the record
    return detail.json()


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["radiographer", "admin_user"])
def test_people_without_clinical_reading_see_the_status_only(request, role, reviewed_scan):
    body = seen_by(request.getfixturevalue(role), reviewed_scan)

    assert body["status"] == "reviewed"
    assert "prediction" not in body and "reviews" not in body
    assert "0.91" not in str(body) and NOTE not in str(body)


@pytest.mark.django_db
def test_only_those_who_may_open_images_get_the_image_link(radiographer, admin_user, reviewed_scan):
    assert seen_by(radiographer, reviewed_scan)["image_url"].endswith(f"{URL}{reviewed_scan.pk}/image/")
    assert "image_url" not in seen_by(admin_user, reviewed_scan)


@pytest.mark.django_db
def test_an_integration_account_reads_the_prediction_and_final_label_but_no_note(integration_account, reviewed_scan):
    body = seen_by(integration_account, reviewed_scan)

    assert body["prediction"]["probability"] == 0.91 and body["prediction"]["label"] == "PNEUMONIA"
    assert "heatmap_url" not in body["prediction"]  # heatmaps are for doctors
    assert [(r["decision"], r["final_label"]) for r in body["reviews"]] == [("override", "NORMAL")]
    assert "note" not in body["reviews"][0] and NOTE not in str(body)
    assert "image_url" not in body


@pytest.mark.django_db
def test_a_doctor_sees_everything_including_the_note(doctor, reviewed_scan):
    body = seen_by(doctor, reviewed_scan)

    assert body["prediction"]["probability"] == 0.91 and "heatmap_url" in body["prediction"]
    assert body["reviews"][0]["note"] == NOTE


@pytest.mark.django_db
def test_an_integration_account_creates_patients_and_uploads(integration_account):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.support.images import png_bytes

    client = token_client(integration_account)
    patient = client.post(
        "/api/v1/patients/", {"mrn": "MRN-PACS-1", "name": "Ann Lee", "birth_date": "1990-01-02", "sex": "F"}
    )
    assert patient.status_code == 201
    upload = client.post(
        URL, {"patient": patient.json()["id"], "image": SimpleUploadedFile("x.png", png_bytes())}, format="multipart"
    )
    assert upload.status_code == 201 and upload.json()["prediction"] is None


@pytest.mark.django_db
def test_an_integration_account_reviews_nothing_and_opens_no_images(integration_account, reviewed_scan):
    client = token_client(integration_account)

    assert client.get(f"{URL}{reviewed_scan.pk}/image/").status_code == 403
    assert client.get(f"{URL}{reviewed_scan.pk}/heatmap/").status_code == 403
    assert client.get("/api/v1/queue/").status_code == 403
    assert client.post("/api/v1/reviews/", {"scan": reviewed_scan.pk, "decision": "confirm"}).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/patients/", "/upload/", "/scans/status/"])
def test_an_integration_account_gets_no_pages(integration_account, path):
    from tests.conftest import logged_in

    assert logged_in(integration_account).get(path).status_code == 403


@pytest.mark.django_db
def test_the_schema_marks_role_bound_fields_optional(doctor):
    components = token_client(doctor).get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]

    assert not {"prediction", "reviews", "image_url"} & set(components["Scan"]["required"])
    assert "note" not in components["Review"].get("required", [])
    assert "id" in components["Scan"]["required"]
