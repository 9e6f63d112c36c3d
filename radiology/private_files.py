"""Serving a patient's stored files (images, heatmaps) to pages and API alike: every view is
audited, nothing is cached outside the browser session, and a file that cannot be served is a
404 with the reason, never a server error."""

import io

import numpy as np
from django.http import FileResponse, Http404, HttpResponse
from PIL import Image

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
    """The upload as a browser shows it: DICOM becomes a PNG of its decoded, windowed pixels."""
    if scan.image_format != Scan.Format.DICOM:
        return stored_image_response(request, scan)
    with open_stored(scan.image) as stored:
        try:
            pixels = decode_upload(stored.read()).pixels
        except RejectedUpload as error:
            raise Http404(f"The stored DICOM file cannot be decoded: {error}") from None
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels)).save(buffer, format="PNG")
    return audited(request, scan, "image", HttpResponse(buffer.getvalue(), content_type="image/png"))


def heatmap_response(request, scan):
    return audited(
        request, scan, "heatmap", FileResponse(open_stored(scan.prediction.heatmap), content_type="image/png")
    )
