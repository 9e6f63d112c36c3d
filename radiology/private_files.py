"""Serving a patient's stored files (images, heatmaps) to pages and API alike: every view is
audited, nothing is cached outside the browser session, and a file that cannot be served is a
404 with the reason, never a server error."""

import io

import numpy as np
from django.http import FileResponse, Http404, HttpResponse
from PIL import Image

from classifier.data import EXIF_ORIENTATION
from radiology.actions import audit
from radiology.ingest import RejectedUpload, decode_upload
from radiology.models import Scan

PRIVATE = "private, no-store"  # patient images stay out of shared and browser caches
STORED_CONTENT_TYPES = {
    Scan.Format.PNG: "image/png",
    Scan.Format.JPEG: "image/jpeg",
    Scan.Format.DICOM: "application/dicom",
}


def open_stored(field_file):
    try:
        return field_file.open("rb")
    except FileNotFoundError:
        raise Http404("The image file is missing from storage.") from None


def private(response):
    response["Cache-Control"] = PRIVATE
    return response


def audited(request, scan, what, response):
    # Recorded once the file is ready to send: a file that cannot be served was not seen.
    audit.audit(request.user, f"scan.{what}_viewed", scan, after={"patient": scan.patient_id})
    return private(response)


def stored_image_response(request, scan):
    """The upload as stored (DICOM as `application/dicom`)."""
    return audited(
        request,
        scan,
        "image",
        FileResponse(open_stored(scan.image), content_type=STORED_CONTENT_TYPES[scan.image_format]),
    )


def viewable_image_response(request, scan):
    """The upload as the model saw it. A DICOM file (which browsers cannot show) and an image
    stored turned (an EXIF orientation, which browsers may or may not apply) are sent as a PNG of
    their decoded pixels, so the page shows exactly what the model and its heatmap were given."""
    stored = open_stored(scan.image)
    if scan.image_format != Scan.Format.DICOM and not stored_turned(stored):
        return audited(
            request, scan, "image", FileResponse(stored, content_type=STORED_CONTENT_TYPES[scan.image_format])
        )
    with stored:
        try:
            pixels = decode_upload(stored.read()).pixels
        except RejectedUpload as error:
            raise Http404(f"The stored image cannot be decoded: {error}") from None
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels)).save(buffer, format="PNG")
    return audited(request, scan, "image", HttpResponse(buffer.getvalue(), content_type="image/png"))


def stored_turned(stored) -> bool:
    """Whether a stored PNG or JPEG carries an EXIF orientation other than upright (header only)."""
    try:
        with Image.open(stored) as image:
            return image.getexif().get(EXIF_ORIENTATION, 1) != 1
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        return False  # served as stored: the browser is as able as we are to show a damaged file
    finally:
        stored.seek(0)


def heatmap_response(request, scan):
    return audited(
        request, scan, "heatmap", FileResponse(open_stored(scan.prediction.heatmap), content_type="image/png")
    )
