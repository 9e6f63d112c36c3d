"""/healthz and /readyz: JSON, no login, and readiness fails for each missing part."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import Client

from classifier.models import ModelVersion
from tests.factories import PatientFactory


def ready_checks(client=None):
    response = (client or Client()).get("/readyz")
    assert response["Content-Type"] == "application/json"
    return response.status_code, json.loads(response.content)


@pytest.fixture
def fake_pacs():
    """A DICOMweb stand-in answering GET /dicom-web/studies with `status` (200 unless changed)."""
    answers = {"status": 200, "paths": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            answers["paths"].append(self.path)
            self.send_response(answers["status"])
            self.send_header("Content-Type", "application/dicom+json")
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    answers["url"] = f"http://127.0.0.1:{server.server_port}/dicom-web"
    yield answers
    server.shutdown()
    server.server_close()


def test_healthz_answers_without_login_or_database():
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok"}


def test_probes_pass_the_host_check_and_the_https_redirect(settings, model_version):
    settings.ALLOWED_HOSTS = ["pneumoscan.hospital.example"]
    settings.SECURE_SSL_REDIRECT = True
    client = Client(HTTP_HOST="10.0.0.7:8000")  # compose's or the load balancer's internal address
    assert client.get("/healthz").status_code == 200
    assert ready_checks(client)[0] == 200
    assert client.get("/login/").status_code == 400  # the rest of the site still checks the host


def test_ready_when_every_part_works(model_version, fake_pacs, settings):
    settings.PACS_DICOMWEB_URL = fake_pacs["url"]
    PatientFactory(name="Ada Patient", mrn="MRN-SECRET-1")
    status, body = ready_checks()
    assert status == 200 and body["status"] == "ready"
    assert set(body["checks"]) == {"database", "broker", "media_storage", "model", "pacs"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["model"]["detail"] == model_version.version
    assert fake_pacs["paths"] == ["/dicom-web/studies?limit=1"]
    assert "Ada" not in json.dumps(body) and "MRN-SECRET" not in json.dumps(body)


def test_without_a_pacs_configured_its_check_says_so(model_version):
    status, body = ready_checks()
    assert status == 200 and body["checks"]["pacs"] == {
        "ok": True,
        "detail": "not configured",
        "ms": pytest.approx(0, abs=50),
    }


def assert_not_ready_because_of(part):
    status, body = ready_checks()
    assert status == 503 and body["status"] == "not ready"
    assert [name for name, check in body["checks"].items() if not check["ok"]] == [part]
    return body["checks"][part]["error"]


def test_not_ready_without_the_database(model_version, monkeypatch):
    from django.db import connections

    from radiology.observability import health

    # The same database settings, but a port nothing listens on: a real refused connection.
    default = connections["default"]
    unreachable = type(default)({**default.settings_dict, "HOST": "127.0.0.1", "PORT": "1"}, "default")
    monkeypatch.setattr(health, "connection", unreachable)
    assert assert_not_ready_because_of("database") == "unavailable (OperationalError)"
    unreachable.close()


def test_not_ready_without_the_broker(model_version, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    assert assert_not_ready_because_of("broker").startswith("unavailable")


def test_not_ready_when_media_storage_refuses_writes(model_version, settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    settings.MEDIA_ROOT = blocker / "media"  # under a regular file: no folder can be made there, even by root
    assert assert_not_ready_because_of("media_storage").startswith("unavailable")


def test_not_ready_without_an_active_model(db):
    assert assert_not_ready_because_of("model") == "no active model version"


def test_not_ready_when_the_model_files_do_not_verify(model_version, tmp_path, tiny_artifact):
    import shutil

    from classifier.artifact import metadata_path, tflite_path

    copy = tmp_path / "copy.keras"
    for source, target in (
        (tiny_artifact, copy),
        (tflite_path(tiny_artifact), tflite_path(copy)),
        (metadata_path(tiny_artifact), metadata_path(copy)),
    ):
        shutil.copy(source, target)
    ModelVersion.objects.filter(pk=model_version.pk).update(artifact_path=str(copy))
    assert ready_checks()[0] == 200
    with open(tflite_path(copy), "ab") as damaged:
        damaged.write(b"\0")
    assert assert_not_ready_because_of("model") == f"model {model_version.version}: files do not verify"
    tflite_path(copy).unlink()
    assert assert_not_ready_because_of("model") == f"model {model_version.version}: files missing"


def test_not_ready_when_the_configured_pacs_fails(model_version, fake_pacs, settings):
    settings.PACS_DICOMWEB_URL = fake_pacs["url"]
    fake_pacs["status"] = 500
    assert assert_not_ready_because_of("pacs") == "PACS answered 500"
    settings.PACS_DICOMWEB_URL = "http://127.0.0.1:1/dicom-web"  # unreachable
    assert assert_not_ready_because_of("pacs") == "unavailable (ConnectionError)"


def test_compose_checks_the_web_app_by_its_readiness_probe():
    from pathlib import Path

    import yaml

    compose = yaml.safe_load((Path(__file__).resolve().parent.parent / "docker-compose.yml").read_text())
    assert "/readyz" in " ".join(compose["services"]["web"]["healthcheck"]["test"])
    assert "inspect ping" in " ".join(compose["services"]["worker"]["healthcheck"]["test"])
