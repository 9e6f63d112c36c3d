"""Logs: LOG_FORMAT=json gives one JSON object per line with request id, user id and timings; the
default stays readable; a patient's name in a query string never reaches the log."""

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from radiology.observability.logs import JsonFormatter, RequestContextFilter, logging_config
from tests.factories import PatientFactory

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture
def log_format():
    """A root handler formatted and filtered as LOG_FORMAT configures it, writing to a buffer (the
    global logging setup and pytest's capture stay as they are)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    level = root.level

    def configure(name):
        spec = logging_config(name, "INFO")["formatters"][name]
        handler.setFormatter(JsonFormatter() if "()" in spec else logging.Formatter(spec["format"]))
        handler.addFilter(RequestContextFilter())
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        return stream

    yield configure
    root.removeHandler(handler)
    root.setLevel(level)


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_lines_carry_request_id_user_id_and_timings(log_format, doctor_client, doctor):
    output = log_format("json")
    response = doctor_client.get(reverse("review_queue"), HTTP_X_REQUEST_ID="lb-7f3a.21")
    assert response["X-Request-ID"] == "lb-7f3a.21"
    lines = json_lines(output.getvalue())  # every line is a JSON object, or this raises
    (request_line,) = [line for line in lines if line["logger"] == "radiology.requests"]
    assert request_line["request_id"] == "lb-7f3a.21"
    assert request_line["user_id"] == doctor.pk
    assert request_line["status"] == 200 and request_line["view"] == "review_queue"
    assert request_line["method"] == "GET" and request_line["path"] == "/review/"
    assert request_line["duration_ms"] > 0 and request_line["db_queries"] > 0 and request_line["db_ms"] >= 0
    assert request_line["level"] == "INFO" and request_line["time"].endswith("+00:00")


def test_lines_written_during_a_request_share_its_id(log_format, doctor_client):
    output = log_format("json")
    logging.getLogger("radiology.test").warning("outside any request")
    response = doctor_client.get("/no-such-page/")
    assert response.status_code == 404  # django.request logs the 404 while the request runs
    lines = json_lines(output.getvalue())
    assert lines[0]["request_id"] is None and lines[0]["user_id"] is None
    inside = [line for line in lines if line["request_id"] == response["X-Request-ID"]]
    assert {line["logger"] for line in inside} >= {"django.request", "radiology.requests"}
    assert all(line["user_id"] is not None for line in inside)


def test_a_strange_request_id_is_replaced(log_format, doctor_client):
    output = log_format("json")
    response = doctor_client.get(reverse("review_queue"), HTTP_X_REQUEST_ID='x" injected\nline')
    assert len(response["X-Request-ID"]) == 32 and response["X-Request-ID"].isalnum()
    assert all(line["request_id"] != 'x" injected\nline' for line in json_lines(output.getvalue()))


def test_no_patient_identity_from_the_query_string(log_format, radiographer_client):
    output = log_format("json")
    PatientFactory(name="Jane Doe", mrn="MRN-777")
    radiographer_client.get(reverse("patient_list"), {"search": "Jane Doe MRN-777"})
    radiographer_client.get("/no-such-page/", {"search": "Jane Doe MRN-777"})  # django.request logs 404s
    text = output.getvalue()
    assert "Jane" not in text and "MRN-777" not in text
    assert any(line.get("path") == "/patients/" for line in json_lines(text))


def test_the_default_stays_readable(log_format, doctor_client, doctor):
    output = log_format("plain")
    response = doctor_client.get(reverse("review_queue"))
    line = output.getvalue().strip().splitlines()[-1]
    assert line.startswith("20") and not line.startswith("{")
    assert f"radiology.requests [request {response['X-Request-ID']} user {doctor.pk}]: GET /review/ 200" in line


def test_an_unknown_log_format_is_refused(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={
            "PATH": os.environ["PATH"],
            "DJANGO_SETTINGS_MODULE": "radiology.settings",
            "DEBUG": "1",
            "VAR_DIR": str(tmp_path),
            "LOG_FORMAT": "xml",
            "PYTHONPATH": str(PROJECT),
        },
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT,
    )
    assert result.returncode != 0 and "LOG_FORMAT must be plain or json, not 'xml'" in result.stderr
