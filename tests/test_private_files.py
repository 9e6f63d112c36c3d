"""A patient's files are served privately; one missing from storage is a clear 404, never a 500."""

from django.urls import reverse

from tests.factories import PredictionFactory
from tests.support.api import token_client


def test_image_and_heatmap_are_private_and_a_missing_file_is_404(doctor, doctor_client):
    prediction = PredictionFactory()
    scan = prediction.scan
    page = doctor_client.get(reverse("scan_image", args=[scan.pk]))
    assert page.status_code == 200 and page["Cache-Control"] == "private, no-store"

    scan.image.storage.delete(scan.image.name)
    prediction.heatmap.storage.delete(prediction.heatmap.name)
    assert doctor_client.get(reverse("scan_image", args=[scan.pk])).status_code == 404
    assert doctor_client.get(reverse("scan_heatmap", args=[scan.pk])).status_code == 404
    api = token_client(doctor)
    for url in (f"/api/v1/scans/{scan.pk}/image/", f"/api/v1/scans/{scan.pk}/heatmap/"):
        response = api.get(url)
        assert response.status_code == 404
        assert "missing from storage" in response.json()["error"]["message"]
