"""`/healthz` (the process answers) and `/readyz` (it can do its work): JSON for compose and load
balancers, no login, nothing about patients.

Readiness checks the database, the Celery broker, that media storage takes a write, that an
active model version exists and its files match their sha256, and the PACS when one is
configured. A failed check says which part and a generic reason; the details go to the log, not
to whoever can reach the probe.
"""

import logging
import time
import uuid

import kombu
import requests
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.http import JsonResponse

from classifier.artifact import ArtifactError, tflite_path, verified_metadata
from classifier.models import ModelVersion

logger = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 3


class NotReady(Exception):
    """A part is missing or broken; the message is safe to show to anyone."""


def check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_broker():
    broker = kombu.Connection(
        settings.CELERY_BROKER_URL,
        transport_options=getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}),
        connect_timeout=PROBE_TIMEOUT_S,
    )
    with broker:
        broker.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=PROBE_TIMEOUT_S)
        broker.default_channel  # noqa: B018 (opening a channel is the check)


def check_media_storage():
    name = default_storage.save(f"readyz/{uuid.uuid4().hex}.probe", ContentFile(b"ok"))
    default_storage.delete(name)


# (path, size and mtime of each file) -> verified: hashing the model on every probe would cost
# tens of milliseconds; a changed file is hashed again.
_verified_files = {}


def file_signature(path):
    stat = path.stat()
    return (str(path), stat.st_size, stat.st_mtime_ns)


def check_active_model():
    version = ModelVersion.active()
    if version is None:
        raise NotReady("no active model version")
    path = version.resolved_artifact_path()
    try:
        key = (version.sha256, file_signature(path), file_signature(tflite_path(path)))
    except OSError:
        raise NotReady(f"model {version.version}: files missing") from None
    if key not in _verified_files:
        try:
            metadata = verified_metadata(path)
        except ArtifactError:
            raise NotReady(f"model {version.version}: files do not verify") from None
        if metadata["sha256"] != version.sha256:
            raise NotReady(f"model {version.version}: files are not the registered ones")
        _verified_files.clear()
        _verified_files[key] = True
    return version.version


def check_pacs():
    if not settings.PACS_DICOMWEB_URL:
        return "not configured"
    auth = (settings.PACS_USERNAME, settings.PACS_PASSWORD) if settings.PACS_USERNAME else None
    answer = requests.get(
        f"{settings.PACS_DICOMWEB_URL}/studies",
        params={"limit": 1},
        auth=auth,
        timeout=min(PROBE_TIMEOUT_S, settings.PACS_TIMEOUT_SECONDS),
    )
    if answer.status_code not in (200, 204):
        raise NotReady(f"PACS answered {answer.status_code}")
    return None


CHECKS = {
    "database": check_database,
    "broker": check_broker,
    "media_storage": check_media_storage,
    "model": check_active_model,
    "pacs": check_pacs,
}


def run_check(name, check):
    started = time.perf_counter()
    result = {"ok": True}
    try:
        detail = check()
    except NotReady as reason:
        result = {"ok": False, "error": str(reason)}
    except Exception as error:  # any failure of a part means not ready; the probe itself must answer
        logger.warning("readiness check %s failed: %r", name, error)
        result = {"ok": False, "error": f"unavailable ({type(error).__name__})"}
    else:
        if detail:
            result["detail"] = detail
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def readiness():
    checks = {name: run_check(name, check) for name, check in CHECKS.items()}
    return all(check["ok"] for check in checks.values()), checks


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    ready, checks = readiness()
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503)
