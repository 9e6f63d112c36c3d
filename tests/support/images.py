"""Generated X-ray-like images in every accepted format (no real patient data in tests)."""

import io

import numpy as np
from PIL import Image


def chest_like_pixels(size=96, seed=0, bright_lungs=False):
    """A dark-lunged (normal-looking) or hazy (opacified) synthetic chest: enough structure for a model."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    body = 0.75 - 0.35 * (((x - 0.5) / 0.45) ** 2 + ((y - 0.55) / 0.6) ** 2)
    lungs = np.exp(-(((x - 0.3) / 0.12) ** 2 + ((y - 0.5) / 0.25) ** 2)) + np.exp(
        -(((x - 0.7) / 0.12) ** 2 + ((y - 0.5) / 0.25) ** 2)
    )
    image = body - (0.1 if bright_lungs else 0.45) * lungs + rng.normal(0, 0.03, (size, size))
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def png_bytes(pixels=None, mode=None, seed=0):
    pixels = chest_like_pixels(seed=seed) if pixels is None else pixels
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(pixels=None, seed=0):
    pixels = chest_like_pixels(seed=seed) if pixels is None else pixels
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def dicom_bytes(
    pixels=None,
    seed=0,
    patient_id="MRN-DCM-1",
    patient_name="Doe^Jane",
    birth_date="20200115",
    sex="F",
    photometric="MONOCHROME2",
    with_pixels=True,
    transfer_syntax=None,
    modality="DX",
    body_part=None,
    view_position=None,
    study_date=None,
):
    """A minimal valid DICOM file written with pydicom (a DX image unless told otherwise)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    pixels = chest_like_pixels(seed=seed).astype(np.uint16) * 16 if pixels is None else pixels
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
    dataset = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = modality
    for keyword, value in (("BodyPartExamined", body_part), ("ViewPosition", view_position), ("StudyDate", study_date)):
        if value:
            setattr(dataset, keyword, value)
    dataset.PatientID = patient_id
    dataset.PatientName = patient_name
    dataset.PatientBirthDate = birth_date
    dataset.PatientSex = sex
    if with_pixels:
        dataset.Rows, dataset.Columns = pixels.shape
        dataset.SamplesPerPixel = 1
        dataset.PhotometricInterpretation = photometric
        dataset.BitsAllocated = 16
        dataset.BitsStored = 12
        dataset.HighBit = 11
        dataset.PixelRepresentation = 0
        dataset.RescaleIntercept = 0
        dataset.RescaleSlope = 1
        dataset.PixelData = pixels.astype(np.uint16).tobytes()
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
