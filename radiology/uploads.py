"""Upload handling below the views: an uploaded file is never kept beyond the size limit.

Django would otherwise write a whole multi-gigabyte upload to a temporary file before any view
could refuse it. This handler keeps one byte more than settings.MAX_UPLOAD_BYTES of each file:
enough for radiology.ingest to refuse it as too large, with its usual message.
"""

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler


class SizeBoundedUploadHandler(TemporaryFileUploadHandler):
    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.kept = 0

    def receive_data_chunk(self, raw_data, start):
        room = settings.MAX_UPLOAD_BYTES + 1 - self.kept
        if room > 0:
            kept = raw_data[:room]
            self.kept += len(kept)
            super().receive_data_chunk(kept, start)
        return None  # the rest of an oversized file is dropped, not passed to another handler
