"""Serving a patient's stored files (images, heatmaps): never cached outside the browser session,
and a file missing from storage is a 404 with a reason, not a server error."""

from django.http import FileResponse, Http404

from radiology.models import Scan

PRIVATE = "private, no-store"  # patient images stay out of shared and browser caches
STORED_CONTENT_TYPES = {Scan.Format.PNG: "image/png", Scan.Format.JPEG: "image/jpeg", Scan.Format.DICOM: "application/dicom"}


def open_stored(field_file):
    try:
        return field_file.open("rb")
    except FileNotFoundError:
        raise Http404("The image file is missing from storage.") from None


def private(response):
    response["Cache-Control"] = PRIVATE
    return response


def stored_file_response(field_file, content_type):
    return private(FileResponse(open_stored(field_file), content_type=content_type))
