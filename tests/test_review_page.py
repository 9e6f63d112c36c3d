"""The review page: what the doctor sees, confirm/override, the next scan, corrections, and images."""

import io
from datetime import timedelta

from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from radiology.models import AuditEvent, Review, Scan
from tests.conftest import logged_in
from tests.factories import PatientFactory, PredictionFactory, ScanFactory
from tests.support.images import dicom_bytes, png_bytes

INTENDED_USE = "Decision aid trained on pediatric chest X-rays; the doctor decides."


def predicted(probability=0.8, waited_minutes=1, **kwargs):
    return PredictionFactory(
        probability=probability, scan__uploaded_at=timezone.now() - timedelta(minutes=waited_minutes), **kwargs
    )


def test_the_page_says_how_the_versions_probability_is_computed(doctor_client):
    two_views = {"preprocessing": {"test_time_zooms": [1.0, 0.9]}, "probability_calibration": {"method": "platt"}}
    ensemble = {
        "preprocessing": {"test_time_zooms": [1.0]},
        "probability_calibration": {"method": "platt"},
        "training": {"ensemble": {"members": [{"version": "a"}, {"version": "b"}]}},
    }
    single = predicted(0.3, model_version__version="single", model_version__metadata=two_views)
    combined = predicted(0.3, model_version__version="ensemble", model_version__metadata=ensemble)

    single_page = doctor_client.get(reverse("review", args=[single.scan.pk])).content.decode()
    combined_page = doctor_client.get(reverse("review", args=[combined.scan.pk])).content.decode()

    assert "Calibrated; the mean of 2 views of the image, as is and zoomed out to 0.9." in single_page
    assert "networks together" not in single_page
    assert "Calibrated; 2 networks together (the mean of their log-odds); on the image as is." in combined_page


def test_the_page_shows_the_prediction_and_how_to_decide(doctor_client):
    prediction = predicted(0.8124, model_version__version="cnn-2026-11", model_version__threshold=0.42)
    page = doctor_client.get(reverse("review", args=[prediction.scan.pk])).content.decode()
    for shown in [
        "0.812",
        "Pneumonia",
        "0.420",
        "cnn-2026-11",
        INTENDED_USE,
        prediction.scan.patient.name,
        reverse("scan_image", args=[prediction.scan.pk]),
        reverse("scan_heatmap", args=[prediction.scan.pk]),
        'id="heatmap-toggle"',
        'id="heatmap-opacity"',
        'id="zoom"',
        "js/review.js",
    ]:
        assert shown in page, shown
    for key in ("<kbd>C</kbd>", "<kbd>O</kbd>", "<kbd>N</kbd>", "<kbd>H</kbd>"):
        assert key in page
    assert 'value="confirm"' in page and 'value="override"' in page and 'name="csrfmiddlewaretoken"' in page


def test_confirm_lands_on_the_next_scan_then_the_empty_queue(doctor_client, doctor):
    first = predicted(0.9).scan
    second = predicted(0.6).scan
    response = doctor_client.post(reverse("review", args=[first.pk]), {"decision": "confirm", "note": ""})
    assert response["Location"] == reverse("review", args=[second.pk])
    review = Review.objects.get(scan=first)
    assert (review.decision, review.final_label, review.doctor) == ("confirm", "PNEUMONIA", doctor)
    first.refresh_from_db()
    assert first.status == Scan.Status.REVIEWED

    response = doctor_client.post(reverse("review", args=[second.pk]), {"decision": "confirm"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("review_queue")
    assert b"No scans waiting." in response.content
    assert f"Scan {second.pk} confirmed: final label pneumonia." in [str(m) for m in response.context["messages"]]


def test_override_needs_a_note(doctor_client):
    scan = predicted(0.9).scan
    refused = doctor_client.post(reverse("review", args=[scan.pk]), {"decision": "override", "note": "  "})
    assert refused.status_code == 400
    assert b"A note is required to override the model&#x27;s prediction." in refused.content
    assert not Review.objects.exists()

    accepted = doctor_client.post(
        reverse("review", args=[scan.pk]), {"decision": "override", "note": "Clear lungs on the lateral view."}
    )
    assert accepted.status_code == 302
    review = Review.objects.get()
    assert (review.decision, review.final_label, review.note) == (
        "override",
        "NORMAL",
        "Clear lungs on the lateral view.",
    )


def test_a_review_is_corrected_by_a_new_review(doctor_client):
    scan = predicted(0.2).scan
    doctor_client.post(reverse("review", args=[scan.pk]), {"decision": "confirm"})
    page = doctor_client.get(reverse("review", args=[scan.pk])).content.decode()
    assert "Correct this review" in page and "Reviews are final" in page

    assert f'name="supersedes" value="{scan.latest_review().pk}"' in page

    doctor_client.post(
        reverse("review", args=[scan.pk]),
        {
            "decision": "override",
            "note": "Missed consolidation, right lower lobe.",
            "supersedes": scan.latest_review().pk,
        },
    )
    first, correction = Review.objects.filter(scan=scan).order_by("created_at", "pk")
    assert first.final_label == "NORMAL" and correction.final_label == "PNEUMONIA"
    assert correction.supersedes == first
    assert list(
        AuditEvent.objects.filter(object_id=str(scan.pk), action__startswith="scan.review")
        .order_by("pk")
        .values_list("action", flat=True)
    ) == ["scan.reviewed", "scan.review_corrected"]


def test_next_link_skips_to_the_following_scan(doctor_client):
    top = predicted(0.9).scan
    following = predicted(0.5).scan
    page = doctor_client.get(reverse("review", args=[top.pk])).content.decode()
    assert f'href="{reverse("review_next")}?after={top.pk}" id="next-link"' in page
    response = doctor_client.get(f"{reverse('review_next')}?after={top.pk}")
    assert response["Location"] == reverse("review", args=[following.pk])


def test_a_scan_without_prediction_has_no_review_page(doctor_client):
    assert doctor_client.get(reverse("review", args=[ScanFactory(status="queued").pk])).status_code == 404


def test_patient_history_lists_scans_predictions_and_reviews(doctor_client):
    patient = PatientFactory()
    reviewed = predicted(0.3, scan__patient=patient, model_version__version="hist-model").scan
    waiting = predicted(0.7, scan__patient=patient).scan
    doctor_client.post(reverse("review", args=[reviewed.pk]), {"decision": "override", "note": "Subtle opacity."})
    page = doctor_client.get(reverse("patient_history", args=[patient.pk])).content.decode()
    for shown in [
        f"#{reviewed.pk}",
        f"#{waiting.pk}",
        "hist-model",
        "0.300",
        "Override",
        "Subtle opacity.",
        INTENDED_USE,
        "Open / correct",
    ]:
        assert shown in page, shown


def test_images_are_served_with_permission_and_audited(doctor, radiographer, admin_user):
    image = png_bytes(seed=3)
    prediction = predicted()
    scan = prediction.scan
    scan.image.save("x.png", ContentFile(image))
    prediction.heatmap.save("h.png", ContentFile(png_bytes(seed=4)))

    response = logged_in(doctor).get(reverse("scan_image", args=[scan.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == image
    assert "no-store" in response["Cache-Control"]
    heatmap = logged_in(doctor).get(reverse("scan_heatmap", args=[scan.pk]))
    assert heatmap.status_code == 200 and b"".join(heatmap.streaming_content) == png_bytes(seed=4)
    events = AuditEvent.objects.filter(object_type="Scan", object_id=str(scan.pk), actor=doctor)
    assert sorted(events.values_list("action", flat=True)) == ["scan.heatmap_viewed", "scan.image_viewed"]

    assert logged_in(radiographer).get(reverse("scan_image", args=[scan.pk])).status_code == 200
    assert logged_in(radiographer).get(reverse("scan_heatmap", args=[scan.pk])).status_code == 403
    assert logged_in(admin_user).get(reverse("scan_image", args=[scan.pk])).status_code == 403
    assert not AuditEvent.objects.filter(action="scan.heatmap_viewed", actor=radiographer).exists()
    assert not AuditEvent.objects.filter(action="scan.image_viewed", actor=admin_user).exists()


def test_a_dicom_scan_is_shown_as_png(doctor_client):
    scan = ScanFactory(status="predicted", image_format="dicom")
    scan.image.save("x.dcm", ContentFile(dicom_bytes(seed=2)))
    response = doctor_client.get(reverse("scan_image", args=[scan.pk]))
    assert response["Content-Type"] == "image/png"
    with Image.open(io.BytesIO(response.content)) as shown:
        assert shown.format == "PNG" and shown.size == (96, 96)
    assert AuditEvent.objects.filter(action="scan.image_viewed", object_id=str(scan.pk)).count() == 1
