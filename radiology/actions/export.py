"""Learning material from the site: the doctors' confirmed scans as a labeled folder, without identity.

Only scans within the model's intended use are exported (the X-rays it was made for). The folder
has the layout `train_model --data` reads: `NORMAL/` and `PNEUMONIA/` by the latest review's final
label, and `manifest.csv` naming each file's patient by a keyed hash, so that training still splits
by patient. Every image is re-encoded from its decoded pixels as a bare PNG:
a DICOM header (name, MRN, birth date, study date) or a JPEG's EXIF never leaves the site. Names
written on the film itself cannot be told apart from the image and are not removed.
"""

import csv
import datetime
import io
import logging
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.utils import timezone
from django.utils.crypto import salted_hmac
from PIL import Image

from classifier.data import CLASS_NAMES, MANIFEST_NAME
from radiology.actions.audit import audit
from radiology.ingest import RejectedUpload, decode_upload
from radiology.models import Review, Scan, within_intended_use

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("file", "label", "patient")


@dataclass
class ExportResult:
    folder: Path
    counts: dict = field(default_factory=lambda: dict.fromkeys(CLASS_NAMES, 0))
    skipped: list = field(default_factory=list)  # ids of scans whose stored file cannot be read

    @property
    def images(self):
        return sum(self.counts.values())


def pseudonym(kind, pk):
    """A stable key for a patient or a scan that only this installation's EXPORT_SALT can produce."""
    return salted_hmac(
        f"pneumoscan.export.{kind}", str(pk), secret=settings.EXPORT_SALT, algorithm="sha256"
    ).hexdigest()[:20]


def reviewed_scans(since=None):
    """Reviewed scans within the model's intended use, with their latest review's final label;
    `since`: reviewed on or after that day."""
    latest = Review.objects.filter(scan=OuterRef("pk")).order_by("-created_at", "-pk")
    scans = (
        Scan.objects.filter(status=Scan.Status.REVIEWED)
        .filter(within_intended_use("prediction"))
        .annotate(
            final_label=Subquery(latest.values("final_label")[:1]),
            reviewed_at=Subquery(latest.values("created_at")[:1]),
        )
        .order_by("pk")
    )
    if since is not None:
        scans = scans.filter(reviewed_at__gte=timezone.make_aware(datetime.datetime.combine(since, datetime.time.min)))
    return scans


def bare_png(pixels):
    """Pixels -> PNG bytes with no metadata chunk at all (16-bit grayscale kept as it is)."""
    image = Image.fromarray(np.ascontiguousarray(pixels))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def export_reviewed(out, since=None) -> ExportResult:
    """Writes the reviewed scans into the new folder `out` (absent or empty) and audits the export.

    The folder appears whole or not at all: it is written beside `out` and renamed at the end."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and is not an empty folder: export into a new one.")
    partial = out.parent / f".{out.name}.partial-{uuid.uuid4().hex}"
    result = ExportResult(out)
    try:
        for class_name in CLASS_NAMES:
            (partial / class_name).mkdir(parents=True)
        rows = []
        for scan in reviewed_scans(since).iterator():
            try:
                with scan.image.open("rb") as stored:
                    pixels = decode_upload(stored.read()).pixels
            except (RejectedUpload, FileNotFoundError) as error:
                log.warning("Scan %s is not exported: its stored image cannot be read (%s)", scan.pk, error)
                result.skipped.append(scan.pk)
                continue
            name = f"{scan.final_label}/{pseudonym('scan', scan.pk)}.png"
            (partial / name).write_bytes(bare_png(pixels))
            rows.append({"file": name, "label": scan.final_label, "patient": pseudonym("patient", scan.patient_id)})
            result.counts[scan.final_label] += 1
        with (partial / MANIFEST_NAME).open("w", newline="") as manifest:
            writer = csv.DictWriter(manifest, fieldnames=MANIFEST_COLUMNS)
            writer.writeheader()
            writer.writerows(sorted(rows, key=lambda row: row["file"]))
        if out.exists():
            out.rmdir()
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    audit(
        None,
        "scans.exported",
        None,
        after={
            "folder": str(out.resolve()),
            "since": since.isoformat() if since else None,
            "images": result.images,
            "counts": result.counts,
            "skipped": result.skipped,
        },
    )
    return result
