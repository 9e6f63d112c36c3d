"""MEDIA_STORAGE=s3 against a local S3-compatible server (moto's, installed from the package registry:
moto[server]), not a stub: uploads land in the bucket, the worker reads them back, the private views
stream them through the app (audited), readiness checks the bucket, and nothing is left on disk."""

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from django.core.files.storage import default_storage
from django.test import Client

from radiology.actions import clinical
from radiology.models import AuditEvent
from tests.support.images import chest_like_pixels, png_bytes

moto_server = pytest.importorskip("moto.server")
PROJECT = Path(__file__).resolve().parent.parent
BUCKET = "pneumoscan-test-media"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


@pytest.fixture(scope="module")
def s3_server():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_media(s3_server, settings, tmp_path):
    client = boto3.client("s3", endpoint_url=s3_server, **CREDENTIALS)
    client.create_bucket(Bucket=BUCKET)
    settings.MEDIA_ROOT = tmp_path / "must-stay-empty"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": s3_server,
                "region_name": "us-east-1",
                "access_key": "testing",
                "secret_key": "testing",
                "default_acl": None,
                "querystring_auth": True,
                "file_overwrite": False,
            },
        },
    }
    yield client
    for stored in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=stored["Key"])
    client.delete_bucket(Bucket=BUCKET)


def bucket_keys(client):
    return sorted(stored["Key"] for stored in client.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_an_upload_lands_in_the_bucket_and_is_streamed_back_through_the_app(
    s3_media, radiographer, radiographer_client, patient, settings
):
    data = png_bytes(chest_like_pixels(size=64, seed=5))
    scan = clinical.upload_scan(radiographer, patient, "chest.png", data).scan
    assert bucket_keys(s3_media) == [scan.image.name]
    assert not Path(settings.MEDIA_ROOT).exists()  # no shared volume involved

    response = radiographer_client.get(f"/api/v1/scans/{scan.pk}/image/")
    assert response.status_code == 200 and b"".join(response.streaming_content) == data
    assert response["Cache-Control"] == "private, no-store"
    assert AuditEvent.objects.filter(action="scan.image_viewed", object_id=str(scan.pk)).count() == 1


def test_a_worker_reads_the_image_from_the_bucket(s3_media, radiographer, patient):
    from radiology.ingest import decode_upload

    data = png_bytes(chest_like_pixels(size=64, seed=6))
    scan = clinical.upload_scan(radiographer, patient, "chest.png", data).scan
    with scan.image.open("rb") as stored:  # what radiology/tasks.py does before predicting
        assert decode_upload(stored.read()).sha256 == scan.sha256


def test_readiness_checks_the_bucket(s3_media, model_version):
    assert Client().get("/readyz").json()["checks"]["media_storage"]["ok"] is True
    s3_media.delete_bucket(Bucket=BUCKET)
    body = Client().get("/readyz").json()
    assert body["checks"]["media_storage"]["ok"] is False
    s3_media.create_bucket(Bucket=BUCKET)


def test_a_missing_object_is_a_404(s3_media, radiographer, radiographer_client, patient):
    scan = clinical.upload_scan(radiographer, patient, "chest.png", png_bytes(chest_like_pixels(size=64, seed=7))).scan
    default_storage.delete(scan.image.name)
    assert radiographer_client.get(f"/api/v1/scans/{scan.pk}/image/").status_code == 404


def test_the_settings_build_the_s3_storage_from_the_environment(tmp_path):
    code = (
        "import django; django.setup(); from django.conf import settings as s;"
        "o = s.STORAGES['default']['OPTIONS']; print(s.STORAGES['default']['BACKEND'], o['bucket_name'],"
        " o['endpoint_url'], o['access_key'], o['location'], o['querystring_auth'])"
    )
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "radiology.settings",
        "DEBUG": "1",
        "VAR_DIR": str(tmp_path),
        "MEDIA_STORAGE": "s3",
        "S3_BUCKET": "scans",
        "S3_ENDPOINT_URL": "http://minio:9000",
        "S3_ACCESS_KEY_ID": "key-id",
        "S3_SECRET_ACCESS_KEY": "secret",
        "S3_PREFIX": "site-a",
    }
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=PROJECT, capture_output=True, text=True)
    assert result.stdout.split() == [
        "storages.backends.s3.S3Storage",
        "scans",
        "http://minio:9000",
        "key-id",
        "site-a",
        "True",
    ]
    missing = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**env, "S3_BUCKET": ""},
        cwd=PROJECT,
        capture_output=True,
        text=True,
    )
    assert missing.returncode != 0 and "MEDIA_STORAGE=s3 needs S3_BUCKET." in missing.stderr
