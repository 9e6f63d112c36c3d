"""Pages for requests Django refuses before any view runs (handler400 in radiology/urls.py)."""

from django.conf import settings
from django.core.exceptions import TooManyFilesSent
from django.shortcuts import render


def bad_request(request, exception):
    if isinstance(exception, TooManyFilesSent):
        # Django stops reading the request at the file past the limit, so nothing was stored.
        message = (
            f"At most {settings.UPLOAD_MAX_FILES} files can be uploaded at once: nothing was stored. "
            "Choose fewer files and upload the rest separately."
        )
    else:
        message = "The request could not be read: nothing was changed."
    return render(request, "400.html", {"message": message}, status=400)
