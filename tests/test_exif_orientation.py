"""A JPEG stored turned (an EXIF orientation tag) is turned upright once, in the decoder: the
model's input, its heatmap (computed from that input) and the page's image are the same pixels."""

import io

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image

from classifier.data import decode_image_bytes
from radiology.actions import clinical
from radiology.ingest import decode_upload
from radiology.tasks import stored_image
from tests.support.images import chest_like_pixels

ROTATE_90_CLOCKWISE = 6  # EXIF orientation: the camera was turned; show the image turned right


def landscape_pixels():
    return chest_like_pixels(size=96, seed=3)[:64, :]  # 64 rows x 96 columns: a turn shows


def jpeg_with_orientation(pixels, orientation=None):
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def served_pixels(response):
    body = b"".join(response.streaming_content) if response.streaming else response.content
    with Image.open(io.BytesIO(body)) as image:
        image.load()
        return np.asarray(image)


def test_decoder_turns_the_image_upright():
    as_stored = decode_upload(jpeg_with_orientation(landscape_pixels())).pixels
    upright = decode_upload(jpeg_with_orientation(landscape_pixels(), ROTATE_90_CLOCKWISE)).pixels
    assert as_stored.shape == (64, 96) and upright.shape == (96, 64)
    np.testing.assert_array_equal(upright, np.rot90(as_stored, k=-1))


def test_training_data_is_turned_the_same_way():
    data = jpeg_with_orientation(landscape_pixels(), ROTATE_90_CLOCKWISE)
    np.testing.assert_array_equal(decode_image_bytes(data), decode_upload(data).pixels)


@pytest.fixture
def turned_scan(radiographer, patient):
    data = jpeg_with_orientation(landscape_pixels(), ROTATE_90_CLOCKWISE)
    return clinical.upload_scan(radiographer, patient, "turned.jpg", data).scan


def test_page_shows_the_pixels_the_model_and_heatmap_are_given(turned_scan, doctor_client):
    response = doctor_client.get(reverse("scan_image", args=[turned_scan.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    shown = served_pixels(response)
    assert shown.shape == (96, 64)
    # What the worker predicts and draws its heatmap on (radiology.tasks.predict_and_record).
    np.testing.assert_array_equal(shown, stored_image(turned_scan, claim_token=None).pixels)  # no failure to record


def test_upright_jpeg_is_served_as_stored(radiographer, patient, doctor_client):
    data = jpeg_with_orientation(landscape_pixels())
    scan = clinical.upload_scan(radiographer, patient, "upright.jpg", data).scan
    response = doctor_client.get(reverse("scan_image", args=[scan.pk]))
    assert response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content) == data
