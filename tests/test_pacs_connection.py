"""PACS configuration: unset means no PACS; set, PneumoScan reaches a real Orthanc over DICOMweb."""

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured

from radiology.pacs.client import pacs_client, pacs_configured
from tests.support.orthanc import modality_instance
from tests.test_configuration import run_python


def test_no_url_means_no_pacs(settings):
    settings.PACS_DICOMWEB_URL = ""
    assert not pacs_configured()
    with pytest.raises(ImproperlyConfigured, match="PACS_DICOMWEB_URL"):
        pacs_client()


def test_the_beat_schedule_polls_only_when_a_pacs_is_configured(tmp_path):
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='radiology.settings'; django.setup();"
        "from django.conf import settings as s; print(sorted(s.CELERY_BEAT_SCHEDULE),"
        " [e['schedule'] for k, e in sorted(s.CELERY_BEAT_SCHEDULE.items()) if k.startswith('pacs')])"
    )
    without = run_python(code, DEBUG="1", VAR_DIR=str(tmp_path))
    assert without.returncode == 0, without.stderr
    assert "pacs" not in without.stdout
    configured = run_python(
        code,
        DEBUG="1",
        VAR_DIR=str(tmp_path),
        PACS_DICOMWEB_URL="http://127.0.0.1:8042/dicom-web/",
        PACS_POLL_SECONDS="5",
    )
    assert configured.returncode == 0, configured.stderr
    assert "'pacs-poll'" in configured.stdout and "'pacs-send-outbox'" in configured.stdout
    assert configured.stdout.strip().endswith("[5, 5]")


def test_a_real_orthanc_answers_qido_with_http_basic_auth(orthanc, settings):
    orthanc.store(modality_instance(seed=1, patient_id="MRN-QIDO-1"))
    found = pacs_client().search_for_instances(search_filters={"PatientID": "MRN-QIDO-1"})
    assert len(found) == 1
    settings.PACS_PASSWORD = "wrong"
    with pytest.raises(requests.HTTPError, match="401"):
        pacs_client().search_for_instances()


def test_orthanc_stopped_is_a_connection_error_and_restarted_keeps_its_archive(orthanc):
    orthanc.store(modality_instance(seed=2, patient_id="MRN-QIDO-2"))
    orthanc.stop()
    with pytest.raises(requests.ConnectionError):
        pacs_client().search_for_instances()
    orthanc.start()
    assert len(pacs_client().search_for_instances(search_filters={"PatientID": "MRN-QIDO-2"})) == 1


def test_compose_runs_an_orthanc_with_dicomweb_that_the_app_polls():
    from pathlib import Path

    import yaml

    compose = yaml.safe_load((Path(__file__).resolve().parent.parent / "docker-compose.yml").read_text())
    orthanc = compose["services"]["orthanc"]
    assert orthanc["image"].startswith("orthancteam/orthanc:")
    assert orthanc["environment"]["DICOM_WEB_PLUGIN_ENABLED"] == "true"
    assert orthanc["environment"]["ORTHANC__AUTHENTICATION_ENABLED"] == "true"
    assert [port.split(":")[-1] for port in orthanc["ports"]] == ["4242"]  # DICOM for modalities; HTTP unpublished
    assert "orthanc-db" in compose["volumes"]
    for name in ("web", "worker", "beat"):
        environment = compose["services"][name]["environment"]
        assert "http://orthanc:8042/dicom-web" in environment["PACS_DICOMWEB_URL"]
        assert "PACS_PASSWORD" in environment["PACS_PASSWORD"]
