"""Bad input is refused with a clear message and leaves nothing behind: no scan row, no stored file.

The files are in tests/badinput/ (how each was made: README.md there). Each is tried at every
door: the decoder, the upload action, the API and the upload page.
"""

import io
import json
import random
import struct
from pathlib import Path

import numpy as np
import pytest

from radiology import ingest
from radiology.actions import clinical
from radiology.ingest import RejectedUpload, decode_upload
from radiology.models import AuditEvent, Patient, Scan
from radiology.uploads import SizeBoundedUploadHandler
from tests.support.images import chest_like_pixels, dicom_bytes, jpeg_bytes, png_bytes

CORPUS = Path(__file__).resolve().parent / "badinput"
PIXEL_LIMIT = 40_000_000  # the corpus's bomb sits between this bound and twice it

# file in the corpus -> words the refusal must contain
REFUSED = {
    "empty.png": "empty",
    "truncated.jpg": "truncated",
    "decompression_bomb.png": "pixel limit",
    "enormous_dimensions.png": "pixel limit",
    "enormous_dimensions.jpg": "pixel limit",
    "enormous_dimensions.dcm": "pixel limit",
    "text_named.png": "not a PNG, JPEG or DICOM",
    "no_pixel_data.dcm": "no pixel data",
    "jpeg_lossless.dcm": "JPEG Lossless",
}
TRAVERSAL_NAMES = ["../../x.png", "..\\..\\x.png", "/etc/cron.d/x.png", "C:\\Windows\\x.png", "scans/../../x.png"]


def corpus(name) -> bytes:
    return (CORPUS / name).read_bytes()


def stored_files(root: Path):
    return sorted(p for p in Path(root).rglob("*") if p.is_file()) if Path(root).exists() else []


@pytest.fixture(autouse=True)
def upload_limits(settings):
    settings.MAX_IMAGE_PIXELS = PIXEL_LIMIT
    settings.MAX_UPLOAD_BYTES = 50 * 1024 * 1024


def assert_nothing_left(media_root):
    assert Scan.objects.count() == 0
    assert not AuditEvent.objects.filter(action__startswith="scan.").exists()
    assert stored_files(media_root) == []


# --- the decoder ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, reason", REFUSED.items())
def test_decoder_refuses_bad_file_with_a_clear_reason(name, reason):
    with pytest.raises(RejectedUpload, match=reason):
        decode_upload(corpus(name))


def test_corpus_bomb_is_between_the_pixel_bound_and_twice_it():
    # PNG header: signature (8), chunk length and type (8), then width and height.
    width, height = struct.unpack(">II", corpus("decompression_bomb.png")[16:24])
    assert PIXEL_LIMIT < width * height < 2 * PIXEL_LIMIT
    width, height = struct.unpack(">II", corpus("enormous_dimensions.png")[16:24])
    assert width * height > 2 * PIXEL_LIMIT


@pytest.mark.parametrize("name", ["decompression_bomb.png", "enormous_dimensions.png", "enormous_dimensions.jpg"])
def test_pillow_bound_alone_refuses_bombs(name, monkeypatch):
    """Pillow's own bound backs up the explicit pixel check: below twice the bound Pillow only
    warns, and that warning must be a refusal too."""
    monkeypatch.setattr(ingest, "check_pixel_count", lambda width, height: None)
    with pytest.raises(RejectedUpload, match="decompression bomb"):
        decode_upload(corpus(name))


def test_undecodable_compression_refusal_names_the_transfer_syntax():
    with pytest.raises(RejectedUpload) as refusal:
        decode_upload(corpus("jpeg_lossless.dcm"))
    assert "(1.2.840.10008.1.2.4.70)" in str(refusal.value)
    assert "cannot decode" in str(refusal.value)


def test_jpeg_ls_dicom_is_decoded_to_its_original_pixels():
    """JPEG-LS is common in archives (PACS ingest); pyjpegls, which highdicom needs, decodes it."""
    from pydicom import dcmread
    from pydicom.uid import JPEGLSLossless

    dataset = dcmread(io.BytesIO(dicom_bytes(seed=11)))
    original = decode_upload(dicom_bytes(seed=11)).pixels
    dataset.compress(JPEGLSLossless)
    written = io.BytesIO()
    dataset.save_as(written, enforce_file_format=True)
    decoded = decode_upload(written.getvalue())
    assert decoded.image_format == "dicom"
    np.testing.assert_array_equal(decoded.pixels, original)


def jpeg_2000_dicom(seed) -> bytes:
    """A DICOM whose pixels are compressed as lossless JPEG 2000 by Pillow's OpenJPEG."""
    from PIL import Image
    from pydicom import dcmread
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    dataset = dcmread(io.BytesIO(dicom_bytes(seed=seed)))
    codestream = io.BytesIO()
    Image.fromarray(chest_like_pixels(seed=seed).astype(np.uint16) * 16).save(
        codestream, "JPEG2000", no_jp2=True, irreversible=False
    )
    dataset.file_meta.TransferSyntaxUID = JPEG2000Lossless
    dataset.PixelData = encapsulate([codestream.getvalue()])
    dataset["PixelData"].VR = "OB"
    dataset["PixelData"].is_undefined_length = True
    written = io.BytesIO()
    dataset.save_as(written, enforce_file_format=True)
    return written.getvalue()


def test_compressed_dicom_with_an_installed_decoder_is_accepted():
    """The refusal above is about a missing decoder, not about compression: JPEG 2000 decodes
    here, to the same pixels as the uncompressed file."""
    decoded = decode_upload(jpeg_2000_dicom(seed=3))
    np.testing.assert_array_equal(decoded.pixels, decode_upload(dicom_bytes(seed=3)).pixels)


def test_multi_frame_dicom_decodes_its_first_frame_only():
    """Only the first frame is decoded, so a file declaring many frames cannot fill memory."""
    from pydicom import dcmread

    frames = np.stack([chest_like_pixels(seed=seed).astype(np.uint16) * 16 for seed in (31, 32, 33)])
    dataset = dcmread(io.BytesIO(dicom_bytes(pixels=frames[0])))
    dataset.NumberOfFrames = len(frames)
    dataset.PixelData = frames.tobytes()
    written = io.BytesIO()
    dataset.save_as(written, enforce_file_format=True)
    np.testing.assert_array_equal(
        decode_upload(written.getvalue()).pixels, decode_upload(dicom_bytes(pixels=frames[0])).pixels
    )


def test_oversized_file_is_refused_before_it_is_decoded(settings, monkeypatch):
    data = png_bytes(seed=11)
    settings.MAX_UPLOAD_BYTES = len(data) - 1

    def must_not_decode(*args, **kwargs):
        raise AssertionError("an oversized file was decoded")

    monkeypatch.setattr(ingest, "sniff_format", must_not_decode)
    monkeypatch.setattr(ingest, "decode_raster", must_not_decode)
    with pytest.raises(RejectedUpload, match=r"larger than the 6.\d+ KB limit"):
        decode_upload(data)


def test_file_at_the_size_limit_is_accepted(settings):
    data = png_bytes(seed=12)
    settings.MAX_UPLOAD_BYTES = len(data)
    assert decode_upload(data).image_format == "png"


@pytest.mark.parametrize(
    "source",
    [png_bytes(seed=1), jpeg_bytes(seed=1), dicom_bytes(seed=1), dicom_bytes(seed=2, photometric="MONOCHROME1")],
    ids=["png", "jpeg", "dicom", "dicom-monochrome1"],
)
def test_damaged_files_are_decoded_or_refused_never_crash(source):
    """Random byte damage (a seeded, bounded sample): the decoder answers with pixels or a
    RejectedUpload, never another exception (which would be a 500 at the door)."""
    rng = random.Random(len(source))
    for _ in range(150):
        damaged = bytearray(source)
        for _ in range(rng.randint(1, 20)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        if rng.random() < 0.3:
            damaged = damaged[: rng.randrange(len(damaged))]
        try:
            decoded = decode_upload(bytes(damaged))
        except RejectedUpload:
            continue
        assert decoded.pixels.ndim in (2, 3) and decoded.pixels.size > 0


# --- the upload action ------------------------------------------------------------------------


@pytest.mark.parametrize("name, reason", REFUSED.items())
def test_upload_action_refuses_and_leaves_nothing(name, reason, radiographer, patient, media_root):
    with pytest.raises(RejectedUpload, match=reason):
        clinical.upload_scan(radiographer, patient, name, corpus(name))
    assert_nothing_left(media_root)


def test_upload_action_refuses_oversized_file_and_leaves_nothing(settings, radiographer, patient, media_root):
    data = corpus("valid.png")
    settings.MAX_UPLOAD_BYTES = len(data) - 1
    with pytest.raises(RejectedUpload, match="larger than"):
        clinical.upload_scan(radiographer, patient, "valid.png", data)
    assert_nothing_left(media_root)


def test_upload_handler_keeps_no_more_of_a_file_than_the_limit(settings):
    """A large upload is cut at MAX_UPLOAD_BYTES + 1 as it arrives: it cannot fill the disk."""
    settings.MAX_UPLOAD_BYTES = 1000
    handler = SizeBoundedUploadHandler()
    handler.new_file("image", "big.png", "image/png", 50_000)
    for start in range(0, 50_000, 4096):
        assert handler.receive_data_chunk(b"x" * 4096, start) is None
    uploaded = handler.file_complete(50_000)
    assert len(uploaded.read()) == 1001 and uploaded.size == 50_000
    uploaded.close()


@pytest.mark.parametrize("client_name", TRAVERSAL_NAMES)
def test_path_traversal_name_is_stored_safely_under_a_generated_name(
    client_name, radiographer, patient, media_root, tmp_path
):
    result = clinical.upload_scan(radiographer, patient, client_name, corpus("valid.png"))
    scan = Scan.objects.get()
    assert result.scan == scan and not result.duplicate
    assert scan.original_filename == "x.png"
    stored = Path(scan.image.path).resolve()
    assert stored.is_relative_to(Path(media_root).resolve())
    assert ".." not in scan.image.name and "x.png" not in scan.image.name
    assert stored_files(tmp_path) == [stored]  # nothing written anywhere else


@pytest.mark.parametrize("client_name", ["x\x00.png", "x\r\n.png", "\x1bx.png", "\u202ex.png"])
def test_control_characters_in_a_name_are_dropped(client_name, radiographer, patient):
    clinical.upload_scan(radiographer, patient, client_name, corpus("valid.png"))
    assert Scan.objects.get().original_filename == "x.png"


# --- through the API --------------------------------------------------------------------------


def multipart(fields: dict, files: dict, boundary="----pneumoscan-test-boundary"):
    """A multipart body built by hand, so file names reach the server exactly as given
    (Django's test client would strip their directories itself)."""
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data) in files.items():
        header = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts.append(header.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def api_upload(client, patient_id, filename, data):
    body, content_type = multipart({"patient": patient_id}, {"image": (filename, data)})
    return client.post("/api/v1/scans/", data=body, content_type=content_type)


def error_text(response):
    return json.dumps(response.json())


@pytest.mark.parametrize("name, reason", REFUSED.items())
def test_api_refuses_bad_file_with_400_and_leaves_nothing(name, reason, radiographer_client, patient, media_root):
    response = api_upload(radiographer_client, patient.pk, name, corpus(name))
    assert response.status_code == 400, response.content
    assert "image" in response.json()["error"].get("fields", {})
    assert reason in error_text(response)
    assert_nothing_left(media_root)


def test_api_refuses_oversized_upload_and_leaves_nothing(settings, radiographer_client, patient, media_root):
    data = corpus("valid.png")
    settings.MAX_UPLOAD_BYTES = len(data) - 1
    response = api_upload(radiographer_client, patient.pk, "valid.png", data)
    assert response.status_code in (400, 413), response.content
    assert "larger than" in error_text(response)
    assert_nothing_left(media_root)


def test_api_refuses_large_upload_streamed_to_disk(settings, radiographer_client, patient, media_root):
    """Above FILE_UPLOAD_MAX_MEMORY_SIZE the upload goes through the size-bounded temporary file."""
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024
    settings.MAX_UPLOAD_BYTES = 4096
    response = api_upload(
        radiographer_client,
        patient.pk,
        "big.png",
        png_bytes(pixels=np.random.default_rng(0).integers(0, 255, (300, 300), dtype=np.uint8)),
    )
    assert response.status_code in (400, 413), response.content
    assert "larger than the 4 KB limit" in error_text(response)
    assert_nothing_left(media_root)


def test_api_stores_traversal_name_safely(radiographer_client, patient, media_root, tmp_path):
    response = api_upload(radiographer_client, patient.pk, "../../x.png", corpus("valid.png"))
    assert response.status_code == 201, response.content
    scan = Scan.objects.get(pk=response.json()["id"])
    assert scan.original_filename == "x.png"
    assert stored_files(tmp_path) == [Path(scan.image.path).resolve()]


@pytest.mark.parametrize(
    "fields, files, bad_field, expected",
    [
        ({}, {"image": ("x.png", None)}, "patient", 400),
        ({"patient": "PATIENT"}, {}, "image", 400),
        ({"patient": "not-a-number"}, {"image": ("x.png", None)}, "patient", 400),
        ({"patient": "99999999"}, {"image": ("x.png", None)}, "patient", 404),  # well formed, nobody has it
        ({"patient": "PATIENT", "image": "just text, not a file"}, {}, "image", 400),
    ],
    ids=["missing-patient", "missing-image", "patient-wrong-type", "unknown-patient", "image-not-a-file"],
)
def test_api_malformed_scan_upload_says_which_field(
    fields, files, bad_field, expected, radiographer_client, patient, media_root
):
    fields = {key: (patient.pk if value == "PATIENT" else value) for key, value in fields.items()}
    files = {key: (filename, corpus("valid.png")) for key, (filename, _) in files.items()}
    body, content_type = multipart(fields, files)
    response = radiographer_client.post("/api/v1/scans/", data=body, content_type=content_type)
    assert response.status_code == expected, response.content
    assert response.json()["error"]["fields"][bad_field]
    assert_nothing_left(media_root)


VALID_PATIENT = {"mrn": "MRN-BAD-1", "name": "Ada Example", "birth_date": "2019-05-06", "sex": "F"}


@pytest.mark.parametrize(
    "change, bad_field",
    [
        ({"birth_date": 20190506}, "birth_date"),
        ({"birth_date": "06/05/2019"}, "birth_date"),
        ({"sex": 1}, "sex"),
        ({"sex": "male"}, "sex"),
        ({"mrn": ["MRN-1"]}, "mrn"),
        ({"name": {"first": "Ada"}}, "name"),
        ({"mrn": None}, "mrn"),
        ({"mrn": "M" * 65}, "mrn"),
    ],
    ids=lambda value: str(value)[:30],
)
def test_api_patient_with_wrong_types_says_which_field(change, bad_field, radiographer_client):
    response = radiographer_client.post(
        "/api/v1/patients/", data={**VALID_PATIENT, **change}, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]["fields"][bad_field]
    assert not Patient.objects.filter(mrn=VALID_PATIENT["mrn"]).exists()


@pytest.mark.parametrize("missing", list(VALID_PATIENT))
def test_api_patient_missing_field_says_which(missing, radiographer_client):
    body = {key: value for key, value in VALID_PATIENT.items() if key != missing}
    response = radiographer_client.post("/api/v1/patients/", data=body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert missing in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2, 3]", b'"a string"', b"\xff\xfe\x00"], ids=["syntax", "list", "string", "binary"]
)
def test_api_malformed_json_is_a_400(body, radiographer_client):
    response = radiographer_client.post("/api/v1/patients/", data=body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["message"]


def test_api_oversized_json_is_refused_before_parsing(settings, radiographer_client):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    body = {**VALID_PATIENT, "name": "A" * 4096}
    response = radiographer_client.post("/api/v1/patients/", data=body, content_type="application/json")
    assert response.status_code in (400, 413), response.content
    assert "limit" in response.json()["error"]["message"]
    assert not Patient.objects.exists()


@pytest.mark.parametrize(
    "change, bad_field, expected",
    [
        ({"scan": "abc"}, "scan", 400),
        ({"scan": 99999999}, "scan", 404),  # well formed, no such scan
        ({"decision": "maybe"}, "decision", 400),
        ({"decision": 1}, "decision", 400),
    ],
    ids=["scan-wrong-type", "unknown-scan", "unknown-decision", "decision-wrong-type"],
)
def test_api_malformed_review_says_which_field(change, bad_field, expected, doctor_client):
    body = {"scan": 1, "decision": "confirm", "final_label": "NORMAL", "note": "", **change}
    response = doctor_client.post("/api/v1/reviews/", data=body, content_type="application/json")
    assert response.status_code == expected, response.content
    assert response.json()["error"]["fields"][bad_field]


# --- through the upload page ------------------------------------------------------------------


def page_upload(client, patient, filename, data):
    body, content_type = multipart({"patient": patient.pk}, {"files": (filename, data)})
    return client.post("/upload/", data=body, content_type=content_type)


@pytest.mark.parametrize("name, reason", REFUSED.items())
def test_upload_page_refuses_bad_file_and_leaves_nothing(name, reason, radiographer_client, patient, media_root):
    response = page_upload(radiographer_client, patient, name, corpus(name))
    assert response.status_code == 400
    assert reason in response.content.decode()
    assert_nothing_left(media_root)


def test_upload_page_refuses_oversized_file_and_leaves_nothing(settings, radiographer_client, patient, media_root):
    data = corpus("valid.png")
    settings.MAX_UPLOAD_BYTES = len(data) - 1
    response = page_upload(radiographer_client, patient, "valid.png", data)
    assert response.status_code == 400
    assert "larger than" in response.content.decode()
    assert_nothing_left(media_root)


def test_upload_page_stores_traversal_name_safely(radiographer_client, patient, tmp_path):
    response = page_upload(radiographer_client, patient, "../../x.png", corpus("valid.png"))
    assert response.status_code == 302
    scan = Scan.objects.get()
    assert scan.original_filename == "x.png"
    assert stored_files(tmp_path) == [Path(scan.image.path).resolve()]


def test_an_image_too_small_for_a_radiograph_is_refused(radiographer, patient, media_root):
    from radiology.models import Scan
    from tests.support.images import png_bytes

    with pytest.raises(RejectedUpload, match=r"1x64 pixels: too small for a chest X-ray"):
        clinical.upload_scan(radiographer, patient, "sliver.png", png_bytes(np.full((64, 1), 128, dtype=np.uint8)))
    assert Scan.objects.count() == 0
    assert not media_root.exists() or not any(p.is_file() for p in media_root.rglob("*"))
