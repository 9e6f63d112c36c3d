"""Decode and validate an uploaded X-ray: PNG, JPEG or DICOM in, pixels and metadata out, or a clear refusal.

The format is told by the file's content, never by its name. The same decoding serves the upload
(validation) and the worker (prediction), so what was accepted is exactly what is predicted.
"""

import contextlib
import hashlib
import io
import warnings
from dataclasses import dataclass, field
from datetime import date

import numpy as np
from django.conf import settings
from PIL import Image

from classifier.data import pil_to_array
from classifier.preprocess import stretch_to_uint8

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
DICOM_MAGIC_OFFSET = 128
MIN_IMAGE_SIDE = 32  # a thumbnail or an icon, not a radiograph


class RejectedUpload(ValueError):
    """The file cannot be accepted; the message says why, for the person who uploaded it."""


@dataclass
class DecodedImage:
    image_format: str  # "png", "jpeg" or "dicom"
    pixels: np.ndarray
    sha256: str
    dicom_patient: dict = field(default_factory=dict)  # mrn, name, birth_date, sex when DICOM has them
    # study_date, modality, body_part, view_position, study_uid, series_uid, sop_instance_uid when DICOM has them
    dicom_study: dict = field(default_factory=dict)


@dataclass
class AcceptedFile:
    name: str
    data: bytes
    decoded: DecodedImage


@dataclass
class RefusedFile:
    name: str
    reason: str


def read_upload(uploaded) -> AcceptedFile | RefusedFile:
    """Read and decode one uploaded file (a Django UploadedFile) from a page or the API."""
    # One byte past the limit is enough for decode_upload to refuse an oversized file with its
    # own message, without reading all of it into memory.
    data = uploaded.read(settings.MAX_UPLOAD_BYTES + 1)
    try:
        return AcceptedFile(uploaded.name, data, decode_upload(data))
    except RejectedUpload as refusal:
        return RefusedFile(uploaded.name, str(refusal))


def check_dicom_patient(decoded: DecodedImage, mrn: str):
    """A DICOM file that names another patient is almost certainly a mix-up: refuse it. The
    message names neither patient: it may be shown in a flash message."""
    file_mrn = decoded.dicom_patient.get("mrn")
    if file_mrn and file_mrn != mrn:
        raise RejectedUpload("The DICOM file names another patient: its patient ID is not this patient's MRN.")


def sniff_format(head: bytes):
    if head.startswith(PNG_SIGNATURE):
        return "png"
    if head.startswith(JPEG_SIGNATURE):
        return "jpeg"
    if head[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + 4] == b"DICM":
        return "dicom"
    return None


def decode_upload(data: bytes) -> DecodedImage:
    """Validate and decode the bytes of an uploaded file. Raises RejectedUpload."""
    if not data:
        raise RejectedUpload("The file is empty.")
    if len(data) > settings.MAX_UPLOAD_BYTES:
        raise RejectedUpload(f"The file is larger than the {readable_size(settings.MAX_UPLOAD_BYTES)} limit.")
    image_format = sniff_format(data[: DICOM_MAGIC_OFFSET + 4])
    if image_format is None:
        raise RejectedUpload("This is not a PNG, JPEG or DICOM file (its content was checked, not its name).")
    if image_format == "dicom":
        pixels, patient, study = decode_dicom(data)
    else:
        pixels, patient, study = decode_raster(data, image_format), {}, {}
    return DecodedImage(image_format, pixels, hashlib.sha256(data).hexdigest(), patient, study)


def readable_size(size: int) -> str:
    for unit, factor in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= factor:
            return f"{size / factor:.3g} {unit}"
    return f"{size} bytes"


def check_pixel_count(width, height):
    if width <= 0 or height <= 0:
        raise RejectedUpload("The image has no pixels.")
    if min(width, height) < MIN_IMAGE_SIDE:
        raise RejectedUpload(
            f"The image is {width}x{height} pixels: too small for a chest X-ray "
            f"(at least {MIN_IMAGE_SIDE} pixels a side)."
        )
    if width * height > settings.MAX_IMAGE_PIXELS:
        raise RejectedUpload(
            f"The image is {width}x{height} pixels, more than the {settings.MAX_IMAGE_PIXELS:,} pixel limit."
        )


def decode_raster(data: bytes, image_format: str) -> np.ndarray:
    name = image_format.upper()
    # Pillow's own bound (set at start-up by limit_pillow) backs up check_pixel_count.
    try:
        with Image.open(io.BytesIO(data), formats=[name]) as image:
            check_pixel_count(*image.size)
            image.load()
            return pil_to_array(image)
    except RejectedUpload:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise RejectedUpload(
            f"The {name} declares more than the {settings.MAX_IMAGE_PIXELS:,} pixel limit (a decompression bomb?)."
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise RejectedUpload(f"The {name} file is damaged or truncated and cannot be decoded ({error}).") from None


def limit_pillow(max_pixels: int):
    """Pillow's pixel bound for the whole process, set once at start-up (RadiologyConfig.ready).

    Between the bound and twice that Pillow only warns: the warning is made an error, so that
    every decode in the process (uploads, the worker, pydicom's JPEG plugin) refuses such a file.
    """
    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.simplefilter("error", Image.DecompressionBombWarning)


def decode_dicom(data: bytes):
    from radiology.dicom_limits import read_dicom

    try:
        dataset = read_dicom(data)
        return dicom_pixels(dataset), dicom_patient(dataset), dicom_study(dataset)
    except RejectedUpload:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise RejectedUpload(
            f"A compressed DICOM frame declares more than the {settings.MAX_IMAGE_PIXELS:,} pixel limit."
        ) from None
    except Exception as error:  # pydicom parses elements lazily and raises many types for damaged ones
        raise RejectedUpload(f"The DICOM file is damaged and cannot be read ({error}).") from None


def dicom_pixels(dataset) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    from radiology.dicom_limits import check_compressed_frame, check_native_length, first_frame

    if "PixelData" not in dataset:
        raise RejectedUpload("The DICOM file has no pixel data (is it a report or a structured document?).")
    try:
        columns, rows = int(dataset.get("Columns", 0) or 0), int(dataset.get("Rows", 0) or 0)
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
        samples = int(dataset.get("SamplesPerPixel", 1) or 1)
        bits_allocated = int(dataset.get("BitsAllocated", 0) or 0)
    except (TypeError, ValueError):
        raise RejectedUpload(
            "The DICOM image description (Rows, Columns, Number of Frames, Samples per Pixel, Bits Allocated) "
            "is not a number."
        ) from None
    check_pixel_count(columns, rows)
    if frames < 1 or samples not in (1, 3) or bits_allocated not in (1, 8, 16, 32):
        raise RejectedUpload(
            f"The DICOM header declares {frames} frames of {samples} samples of {bits_allocated} bits: "
            "not an image this installation reads (1 or more frames; 1 or 3 samples; 1, 8, 16 or 32 bits)."
        )
    syntax = dataset.file_meta.get("TransferSyntaxUID") if hasattr(dataset, "file_meta") else None
    encoding = f"{syntax.name} ({syntax})" if syntax is not None else "an unstated transfer syntax"
    if syntax is not None and not has_pixel_decoder(syntax):
        raise RejectedUpload(
            f"The DICOM pixel data is compressed as {encoding}, which this installation cannot decode."
        )
    # Everything the decoder will allocate is checked first; then only the first frame (the
    # radiograph) is decoded.
    if syntax is not None and syntax.is_encapsulated:
        check_compressed_frame(syntax, first_frame(dataset, frames), rows, columns, samples, bits_allocated)
    else:
        check_native_length(dataset, rows, columns, samples, bits_allocated, frames)
    dataset.pixel_array_options(index=0)
    try:
        pixels = apply_voi_lut(apply_modality_lut(dataset.pixel_array, dataset), dataset).astype(np.float32)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise
    except Exception as error:  # pydicom and numpy raise many types for damaged or inconsistent data
        raise RejectedUpload(f"The DICOM pixel data ({encoding}) is damaged and cannot be decoded ({error}).") from None
    if dataset.get("PhotometricInterpretation") == "MONOCHROME1":
        pixels = pixels.max() - pixels  # MONOCHROME1 shows low values as white
    return stretch_to_uint8(pixels)


def has_pixel_decoder(syntax) -> bool:
    """Whether the pixel data in this transfer syntax can be decoded here (uncompressed always can)."""
    from pydicom.pixels import get_decoder

    try:
        return not syntax.is_compressed or get_decoder(syntax).is_available
    except (ValueError, NotImplementedError):  # not a transfer syntax, or one pydicom cannot decode at all
        return False


def dicom_patient(dataset) -> dict:
    patient = {}
    if dataset.get("PatientID"):
        patient["mrn"] = str(dataset.PatientID).strip()
    if dataset.get("PatientName"):
        # DICOM person names are Family^Given^Middle.
        patient["name"] = " ".join(reversed([p for p in str(dataset.PatientName).split("^")[:2] if p])).strip()
    birth_date = dicom_date(dataset.get("PatientBirthDate"))
    if birth_date:
        patient["birth_date"] = birth_date
    sex = str(dataset.get("PatientSex", "") or "").strip().upper()
    if sex in ("M", "F", "O"):
        patient["sex"] = sex
    return patient


def dicom_date(value) -> date | None:
    text = str(value or "").strip()
    if len(text) == 8 and text.isdigit():
        with contextlib.suppress(ValueError):
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    return None


DICOM_STUDY_TEXT = {
    "modality": "Modality",
    "body_part": "BodyPartExamined",
    "view_position": "ViewPosition",
    "study_uid": "StudyInstanceUID",
    "series_uid": "SeriesInstanceUID",
    "sop_instance_uid": "SOPInstanceUID",
}


def dicom_study(dataset) -> dict:
    """What the file says about the study: its date, the acquisition (modality, body part, view) and its UIDs."""
    study = {
        key: str(dataset.get(keyword)).strip().upper()
        if key in ("modality", "body_part", "view_position")
        else str(dataset.get(keyword)).strip()
        for key, keyword in DICOM_STUDY_TEXT.items()
        if dataset.get(keyword)
    }
    study_date = dicom_date(dataset.get("StudyDate"))
    if study_date:
        study["study_date"] = study_date
    return study
