"""The one way to reach the PACS: a DICOMweb client built from the settings."""

import requests
from dicomweb_client import DICOMwebClient
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def pacs_configured() -> bool:
    return bool(settings.PACS_DICOMWEB_URL)


def pacs_client() -> DICOMwebClient:
    if not pacs_configured():
        raise ImproperlyConfigured("PACS_DICOMWEB_URL is not set: there is no PACS to talk to.")
    session = requests.Session()
    if settings.PACS_USERNAME:
        session.auth = (settings.PACS_USERNAME, settings.PACS_PASSWORD)
    client = DICOMwebClient(settings.PACS_DICOMWEB_URL, session=session, timeout=settings.PACS_TIMEOUT_SECONDS)
    # An unreachable PACS is retried by the outbox and the next poll, with backoff; retrying inside
    # one call as well would only hold a worker for minutes.
    client.set_http_retry_params(retry=False)
    return client
