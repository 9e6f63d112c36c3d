"""Decoding that cannot be turned into a bomb (issue 10, item 5).

A small file must not make the decoder allocate much: Deflated DICOM is inflated with a cap,
uncompressed pixel data must be exactly what the header declares, only the first frame is
decoded, a compressed frame's own size must match the header, Pillow's bound is set once at
start-up and its warning is a refusal, and one request carries at most UPLOAD_MAX_FILES files.
"""

import functools
import io
import os
import re
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest
from django.conf import settings as live_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from radiology import ingest
from radiology.ingest import RejectedUpload, decode_upload
from radiology.models import Scan
from tests.support import dicom_bombs
from tests.support.images import chest_like_pixels, dicom_bytes, png_bytes

MB = 1024 * 1024


@functools.cache
def issue_bomb():
    return dicom_bombs.issue_bomb()


@pytest.fixture(autouse=True)
def default_limits(settings):
    settings.MAX_UPLOAD_BYTES = 50 * MB
    settings.MAX_IMAGE_PIXELS = 40_000_000


# --- Deflated transfer syntax ---------------------------------------------------------------


def test_the_issues_deflated_800_frame_file_is_refused_quickly_and_small():
    data = issue_bomb()
    assert 150_000 < len(data) < 250_000  # the ~199 KB file of the issue
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(RejectedUpload, match="inflates to more than the 50 MB upload limit"):
            decode_upload(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 15
    assert peak < 100 * MB, f"refusing it took {peak / MB:.0f} MB"
    # ... and a valid X-ray is accepted right after.
    assert decode_upload(dicom_bytes(seed=4)).pixels.shape == (96, 96)


def test_deflated_file_is_never_inflated_past_the_upload_limit(settings):
    """The cap is the upload limit, even for a file far below it."""
    data = dicom_bombs.deflated_dicom(96, 96, 96 * 96, [bytes(96 * 96)])
    assert len(data) < 2000
    settings.MAX_UPLOAD_BYTES = 5000  # the file, but not the 9 KB it inflates to
    with pytest.raises(RejectedUpload, match=r"inflates to more than the 4.88 KB upload limit"):
        decode_upload(data)
    settings.MAX_UPLOAD_BYTES = 20_000
    assert decode_upload(data).pixels.shape == (96, 96)


def test_valid_deflated_file_is_decoded():
    decoded = decode_upload(dicom_bombs.small_deflated(frames_in_data=1, seed=5))
    assert decoded.pixels.shape == (96, 96) and decoded.dicom_patient["mrn"] == "MRN-BOMB"


def test_deflated_frames_without_number_of_frames_are_refused():
    """Within the cap, the data still has to match the header: undeclared frames are refused."""
    with pytest.raises(RejectedUpload, match=r"holds 46,080 bytes.*1 frames\) describes 9,216"):
        decode_upload(dicom_bombs.small_deflated(frames_in_data=5))


@pytest.mark.parametrize(
    "damage, reason",
    [(lambda data: data[:-500], "truncated"), (lambda data: data[:-600] + b"\xff" * 600, "damaged|truncated")],
    ids=["truncated", "garbled"],
)
def test_damaged_deflate_stream_is_refused(damage, reason):
    with pytest.raises(RejectedUpload, match=reason):
        decode_upload(damage(dicom_bombs.small_deflated(frames_in_data=1)))


# --- uncompressed pixel data must be what the header says -----------------------------------


def dicom_with(pixel_data: bytes, **elements) -> bytes:
    from pydicom import dcmread

    dataset = dcmread(io.BytesIO(dicom_bytes(seed=6)))
    for keyword, value in elements.items():
        setattr(dataset, keyword, value)
    dataset.PixelData = pixel_data
    written = io.BytesIO()
    dataset.save_as(written, enforce_file_format=True)
    return written.getvalue()


def frames_16bit(count):
    return np.stack([chest_like_pixels(seed=40 + i).astype(np.uint16) * 16 for i in range(count)])


def test_undeclared_frames_are_refused():
    with pytest.raises(RejectedUpload, match="inconsistent"):
        decode_upload(dicom_with(frames_16bit(3).tobytes()))


def test_short_pixel_data_is_refused():
    with pytest.raises(RejectedUpload, match=r"holds 18,000 bytes.*describes 18,432"):
        decode_upload(dicom_with(frames_16bit(1).tobytes()[:18_000]))


def test_more_frames_declared_than_present_are_refused():
    with pytest.raises(RejectedUpload, match="inconsistent"):
        decode_upload(dicom_with(frames_16bit(2).tobytes(), NumberOfFrames=3))


def test_declared_frames_decode_the_first_only(monkeypatch):
    frames = frames_16bit(3)
    decoded = decode_upload(dicom_with(frames.tobytes(), NumberOfFrames=3))
    np.testing.assert_array_equal(decoded.pixels, decode_upload(dicom_bytes(pixels=frames[0])).pixels)


def test_unreadable_sample_layout_is_refused():
    with pytest.raises(RejectedUpload, match="1 or 3 samples"):
        decode_upload(dicom_with(frames_16bit(1).tobytes(), SamplesPerPixel=4))


# --- compressed frames: their own size must match the header ---------------------------------


def jpeg_2000_dicom(frame_pixels, rows, columns):
    from pydicom.uid import JPEG2000Lossless

    return dicom_bombs.encapsulated_dicom(
        dicom_bombs.jpeg_2000_frame(frame_pixels), JPEG2000Lossless, rows, columns, bits_allocated=16
    )


def jpeg_dicom(frame_pixels, rows, columns):
    from pydicom.uid import JPEGBaseline8Bit

    return dicom_bombs.encapsulated_dicom(
        dicom_bombs.jpeg_frame(frame_pixels), JPEGBaseline8Bit, rows, columns, bits_allocated=8
    )


def test_matching_jpeg_2000_and_jpeg_frames_are_decoded():
    pixels = chest_like_pixels(seed=7)
    assert decode_upload(jpeg_2000_dicom(pixels.astype(np.uint16) * 16, 96, 96)).pixels.shape == (96, 96)
    assert decode_upload(jpeg_dicom(pixels, 96, 96)).pixels.shape == (96, 96)


@pytest.mark.parametrize("make", [jpeg_2000_dicom, jpeg_dicom], ids=["jpeg2000", "jpeg"])
def test_frame_larger_than_its_header_is_refused_before_decoding(make, monkeypatch):
    from pydicom.dataset import Dataset

    def must_not_decode(*args, **kwargs):
        raise AssertionError("an inconsistent frame was decoded")

    monkeypatch.setattr(Dataset, "pixel_array", property(must_not_decode))
    big = np.zeros((400, 300), dtype=np.uint8)
    with pytest.raises(
        RejectedUpload, match=r"frame is 300x400 pixels with 1 samples, but the DICOM header says 96x96"
    ):
        decode_upload(make(big if make is jpeg_dicom else big.astype(np.uint16), 96, 96))


def test_frame_smaller_than_its_header_is_refused():
    with pytest.raises(RejectedUpload, match="inconsistent"):
        decode_upload(jpeg_dicom(chest_like_pixels(seed=8), 128, 128))


def rle_dicom(segments, rows=96, columns=96):
    from pydicom.uid import RLELossless

    return dicom_bombs.encapsulated_dicom(dicom_bombs.rle_frame(segments), RLELossless, rows, columns, 8)


def test_valid_rle_frame_is_decoded():
    pixels = chest_like_pixels(seed=9)
    decoded = decode_upload(rle_dicom([dicom_bombs.rle_literal_segment(pixels.tobytes())]))
    np.testing.assert_array_equal(decoded.pixels, ingest.stretch_to_uint8(pixels.astype(np.float32)))


def test_rle_segment_that_decodes_past_the_frame_is_refused():
    """2 bytes per 128 decoded: 20 KB of replicate runs would decode to 1.3 MB for a 9 KB frame."""
    bomb_segment = b"\x81\x00" * 10_000
    with pytest.raises(RejectedUpload, match="RLE segment decodes to more than the 9,216 bytes"):
        decode_upload(rle_dicom([bomb_segment]))


def test_rle_segment_count_must_match_the_header():
    plane = dicom_bombs.rle_literal_segment(bytes(96 * 96))
    with pytest.raises(RejectedUpload, match="2 segments where the DICOM header needs 1"):
        decode_upload(rle_dicom([plane, plane]))


# --- Pillow's bound: set once, at start-up; its warning is a refusal ---------------------------


def test_start_up_sets_pillows_bound_and_makes_its_warning_an_error():
    """In a fresh process (as gunicorn and the worker start): django.setup() runs the app's ready()."""
    probe = (
        "import warnings, django; django.setup(); from PIL import Image; "
        "print(Image.MAX_IMAGE_PIXELS, any(f[0] == 'error' and f[2] is Image.DecompressionBombWarning "
        "for f in warnings.filters))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=live_settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "radiology.settings", "MAX_IMAGE_PIXELS": "1234567"},
    )
    assert result.stdout.split() == ["1234567", "True"]


def test_decoding_leaves_pillows_bound_alone(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 39_999_999)
    decode_upload(png_bytes(seed=10))
    assert Image.MAX_IMAGE_PIXELS == 39_999_999


def test_pillows_warning_inside_pydicom_is_a_refusal(monkeypatch):
    """A frame between Pillow's bound and twice it only warns; decoded through pydicom's Pillow
    plugin that warning still refuses the file."""
    monkeypatch.setattr(ingest, "check_pixel_count", lambda width, height: None)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 96 * 96 - 1)
    with pytest.raises(RejectedUpload, match="(?s)cannot be decoded.*decompression bomb"):
        decode_upload(jpeg_dicom(chest_like_pixels(seed=11), 96, 96))


# --- files per upload request ----------------------------------------------------------------


def png_files(count):
    return [
        SimpleUploadedFile(f"x{index}.png", png_bytes(seed=20 + index), content_type="image/png")
        for index in range(count)
    ]


def test_upload_page_refuses_more_files_than_the_limit(settings, radiographer_client, patient):
    settings.UPLOAD_MAX_FILES = settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    response = radiographer_client.post("/upload/", {"patient": patient.pk, "files": png_files(3)})
    assert response.status_code == 400
    assert "At most 2 files can be uploaded at once: nothing was stored." in response.content.decode()
    assert Scan.objects.count() == 0
    response = radiographer_client.post("/upload/", {"patient": patient.pk, "files": png_files(2)})
    assert response.status_code == 302 and Scan.objects.count() == 2


def test_too_many_files_are_refused_before_the_csrf_check_reads_them(settings, radiographer, patient):
    """In production the CSRF middleware reads the form first: the refusal is the same page."""
    settings.UPLOAD_MAX_FILES = settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    client = Client(enforce_csrf_checks=True)
    client.force_login(radiographer)
    form = client.get("/upload/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    response = client.post("/upload/", {"csrfmiddlewaretoken": token, "patient": patient.pk, "files": png_files(3)})
    assert response.status_code == 400
    assert "At most 2 files can be uploaded at once" in response.content.decode()
    assert Scan.objects.count() == 0


def test_api_refuses_more_files_than_the_limit(settings, radiographer, patient):
    from rest_framework.test import APIClient

    settings.UPLOAD_MAX_FILES = settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    client = APIClient()
    client.force_authenticate(radiographer)
    files = png_files(3)
    response = client.post(
        "/api/v1/scans/", {"patient": patient.pk, "image": files[0], "extra1": files[1], "extra2": files[2]}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_files"
    assert Scan.objects.count() == 0


def test_default_files_per_request_is_twenty():
    assert live_settings.UPLOAD_MAX_FILES == 20 and live_settings.DATA_UPLOAD_MAX_NUMBER_FILES == 20
