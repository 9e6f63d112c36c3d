"""schemathesis' own command line, every check, against a live server as each role: no server
error, every answer as documented, nothing the schema forbids accepted and nothing it allows refused
with a 400 (what does not exist is a 404, what conflicts with the current state a 409)."""

import subprocess
import sys
from pathlib import Path

import pytest

from radiology.actions import tokens
from tests.factories import PredictionFactory, UserFactory

pytestmark = pytest.mark.slow

ST = Path(sys.executable).with_name("st")
CONFIG = Path(__file__).resolve().parent.parent / "schemathesis.toml"


@pytest.fixture
def unthrottled(settings):
    from rest_framework.throttling import SimpleRateThrottle

    previous = SimpleRateThrottle.THROTTLE_RATES
    SimpleRateThrottle.THROTTLE_RATES = {**previous, "anon": "100000/minute", "user": "100000/minute"}
    yield
    SimpleRateThrottle.THROTTLE_RATES = previous


@pytest.mark.parametrize("role", ["radiographer", "doctor", "admin"])
def test_schemathesis_finds_nothing_as_each_role(role, live_server, transactional_db, unthrottled, tmp_path):
    user = UserFactory(username=f"st-{role}", role=role, is_staff=role == "admin")
    PredictionFactory()  # something to find
    key = tokens.issue_api_token(user, user).key
    command = [
        str(ST),
        "--config-file",
        str(CONFIG),
        "run",
        "--checks",
        "all",
        "--header",
        f"Authorization: Token {key}",
        "--exclude-path-regex",
        "token",  # the token paths: the run must not revoke its own
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "5",
        "--generation-deterministic",
        "--no-color",
        f"{live_server.url}/api/schema/",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-40000:] + result.stderr[-2000:]
