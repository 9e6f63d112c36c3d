"""Labeled image folders: decoding, patient ids, and the patient-wise train/validation split.

A labeled folder holds `NORMAL/` and `PNEUMONIA/` subfolders of PNG or JPEG files of any
size (the layout of the shared dataset, of a site's calibration sample and of `export_reviewed`).
A `manifest.csv` beside them (`file`, `patient` columns; `export_reviewed` writes one) names each
file's patient; without it the patient comes from the file name.
"""

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from classifier.preprocess import ImageError

EXIF_ORIENTATION = 0x0112  # 1 is upright; 2-8 are mirrored and/or turned
CLASS_NAMES = ("NORMAL", "PNEUMONIA")  # index = label; 1 = pneumonia
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
MANIFEST_NAME = "manifest.csv"

# Kermany file names carry the patient: person123_bacteria_456.jpeg -> person123,
# IM-0115-0001.jpeg -> IM-0115, NORMAL2-IM-0006-0001.jpeg -> NORMAL2-IM-0006.
KERMANY_PATIENT = re.compile(r"^(person\d+|(?:NORMAL2-)?IM-\d+)")


@dataclass(frozen=True)
class LabeledImage:
    path: Path
    label: int
    patient_id: str


def decode_image_bytes(data, name="image"):
    """PNG/JPEG bytes -> pixel array, decoded exactly as an upload is.

    Pillow, as in `radiology.ingest.decode_raster` (the upload and the worker), so the
    threshold is chosen on the very pixels the model sees in production: 8-bit L for the
    dataset's grayscale JPEGs, RGB/RGBA for colour, uint16 for 16-bit PNGs.
    """
    try:
        with Image.open(io.BytesIO(data), formats=["PNG", "JPEG"]) as image:
            image.load()
            return pil_to_array(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{name}: not a decodable PNG or JPEG image ({error})") from None


def pil_to_array(image):
    """A loaded PIL image -> numpy: 8/16-bit grayscale, RGB or RGBA as they are, other modes converted.

    Uploads (radiology.ingest) and data sets decode through this one function. The image is
    first turned upright as its EXIF orientation says (as a browser shows it), so the model, the
    heatmap and the page all see the same pixels."""
    image = upright(image)
    if image.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(image, dtype=np.uint16)
    if image.mode in ("I", "F"):
        return np.asarray(image, dtype=np.float32)
    if image.mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.mode or "transparency" in image.info else "RGB")
    return np.asarray(image)


def upright(image):
    """The image turned as its EXIF orientation tag says; the image itself when it has none."""
    if image.getexif().get(EXIF_ORIENTATION, 1) in range(2, 9):
        return ImageOps.exif_transpose(image)
    return image


def read_image(path):
    path = Path(path)
    return decode_image_bytes(path.read_bytes(), name=str(path))


def patient_id_for(filename):
    """The patient a file belongs to; files named otherwise count as their own patient."""
    match = KERMANY_PATIENT.match(filename)
    return match.group(1) if match else Path(filename).stem


def manifest_patients(data_dir):
    """{"NORMAL/x.png": patient key} from DIR/manifest.csv; empty when there is none.

    Two layouts: an export's (file, patient) and the shared data set's (label, filename, patient_id).
    """
    manifest = Path(data_dir) / MANIFEST_NAME
    if not manifest.is_file():
        return {}
    with manifest.open(newline="") as rows:
        reader = csv.DictReader(rows)
        columns = set(reader.fieldnames or ())
        if {"file", "patient"} <= columns:
            return {row["file"]: row["patient"] for row in reader}
        if {"label", "filename", "patient_id"} <= columns:
            return {f"{row['label']}/{row['filename']}": row["patient_id"] for row in reader}
        raise ValueError(f"{manifest} needs the columns file and patient (or label, filename and patient_id)")


def list_labeled_images(data_dir):
    """All images under DIR/NORMAL and DIR/PNEUMONIA, in a stable order."""
    data_dir = Path(data_dir)
    missing = [name for name in CLASS_NAMES if not (data_dir / name).is_dir()]
    if missing:
        raise FileNotFoundError(f"{data_dir} has no {' or '.join(missing)} folder")
    patients = manifest_patients(data_dir)
    images = []
    for label, class_name in enumerate(CLASS_NAMES):
        for path in sorted((data_dir / class_name).iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                patient = patients.get(f"{class_name}/{path.name}") or patient_id_for(path.name)
                images.append(LabeledImage(path, label, patient))
    if not images:
        raise FileNotFoundError(f"{data_dir} holds no PNG or JPEG images")
    return images


def list_labeled_folders(data_dirs):
    """The images of several labeled folders, one after another. A patient id found in two folders
    is one patient (an export's keys are stable across exports), so the split keeps them together."""
    return [image for data_dir in data_dirs for image in list_labeled_images(data_dir)]


def patient_groups(images):
    """Group index per image: same patient, or byte-identical files, share a group.

    Byte-identical copies filed under different names would otherwise leak the same
    X-ray into both sides of the split.
    """
    parent = {}

    def find(key):
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    for image in images:
        digest = hashlib.sha256(image.path.read_bytes()).hexdigest()
        parent[find(("sha", digest))] = find(("patient", image.patient_id))
    roots = [find(("patient", image.patient_id)) for image in images]
    index = {root: i for i, root in enumerate(dict.fromkeys(roots))}
    return np.array([index[root] for root in roots])


def split_by_patient(images, validation_fraction=0.15, seed=1337):
    """Patient-wise split, stratified by class, -> (train_images, validation_images)."""
    groups = patient_groups(images)
    labels = np.array([image.label for image in images])
    rng = np.random.default_rng(seed)
    validation_groups = set()
    for label in (0, 1):
        class_groups = np.unique(groups[labels == label])
        rng.shuffle(class_groups)
        n_validation = round(len(class_groups) * validation_fraction)
        validation_groups.update(class_groups[:n_validation].tolist())
    in_validation = np.array([g in validation_groups for g in groups])
    train = [image for image, v in zip(images, in_validation) if not v]
    validation = [image for image, v in zip(images, in_validation) if v]
    return train, validation


def summarize(images):
    labels = [image.label for image in images]
    return {
        "images": len(images),
        "patients": len({image.patient_id for image in images}),
        "normal": labels.count(0),
        "pneumonia": labels.count(1),
    }
