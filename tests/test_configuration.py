"""Settings come from the environment; docker-compose.yml and `make test`'s service check agree with them."""

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_SOURCE = (ROOT / "radiology" / "settings.py").read_text()
REQUIRED_VARIABLES = {
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "MEDIA_ROOT",
    "CLASSIFIER_MODEL_PATH",
}


def variables_read_by_settings():
    return set(re.findall(r'env_(?:str|bool|int|list)\(\s*"([A-Z0-9_]+)"', SETTINGS_SOURCE))


def run_python(code, **env):
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def test_compose_has_the_four_services_with_volumes():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert {"postgres", "redis", "web", "worker", "beat"} <= set(compose["services"])
    assert {"pgdata", "media"} <= set(compose["volumes"])
    assert "gunicorn" in compose["services"]["web"]["command"]
    assert "celery -A radiology worker" in compose["services"]["worker"]["command"]
    assert "celery -A radiology beat" in compose["services"]["beat"]["command"]


def test_compose_app_variables_are_the_settings_variables():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    known = variables_read_by_settings()
    assert known >= REQUIRED_VARIABLES
    for name in ("web", "worker"):
        service = compose["services"][name]
        environment = set(service["environment"])
        assert environment >= REQUIRED_VARIABLES, f"{name} lacks {REQUIRED_VARIABLES - environment}"
        assert environment <= known, f"{name} sets variables the settings never read: {environment - known}"
        assert any(volume.startswith("media:") for volume in service["volumes"])


def test_secret_key_is_required_when_debug_is_off(tmp_path):
    result = run_python(
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='radiology.settings'; django.setup()",
        DEBUG="0",
        VAR_DIR=str(tmp_path),
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_embedded_defaults_need_no_server(tmp_path):
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='radiology.settings'; django.setup();"
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.MEDIA_ROOT)"
    )
    result = run_python(code, DEBUG="1", VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    engine, broker, media = result.stdout.split()
    assert engine == "django.db.backends.sqlite3"
    assert broker == "filesystem://"
    assert media == str(tmp_path / "media")
    assert (tmp_path / "broker").is_dir()


def test_service_check_stops_with_one_line_naming_the_service():
    env = {
        "PATH": os.environ["PATH"],
        "DATABASE_URL": "postgres://postgres@127.0.0.1:1/none",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/14",
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "bin" / "check-services")], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("PostgreSQL is not reachable")

    env.update(
        DATABASE_URL=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pneumoscan"),
        CELERY_BROKER_URL="redis://127.0.0.1:1/0",
    )
    result = subprocess.run(
        [sys.executable, str(ROOT / "bin" / "check-services")], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert result.stderr.startswith("Redis is not reachable")
