"""A `make run` checkout: var/local.env (generated SECRET_KEY, DEBUG=1) read by manage.py, and one
line saying what to run first when the database is missing or not set up."""

import os
import stat
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def run(*args, **env):
    """manage.py or a module in a clean environment: only what a newcomer's shell would have."""
    return subprocess.run(
        [sys.executable, *args],
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env},
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_make_run_writes_the_file_once_readable_by_its_owner_only(tmp_path):
    first = run("-m", "radiology.local_env", VAR_DIR=str(tmp_path))
    assert first.returncode == 0, first.stderr
    path = tmp_path / "local.env"
    content = path.read_text()
    assert "DEBUG=1" in content.splitlines()
    (key_line,) = [line for line in content.splitlines() if line.startswith("SECRET_KEY=")]
    assert len(key_line) > len("SECRET_KEY=") + 50
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    run("-m", "radiology.local_env", VAR_DIR=str(tmp_path))
    assert path.read_text() == content  # kept: sessions and tokens signed with it stay valid


def test_manage_py_reads_it_so_nothing_needs_exporting(tmp_path):
    refused = run("manage.py", "check", VAR_DIR=str(tmp_path))
    assert refused.returncode != 0 and "SECRET_KEY must be set" in refused.stderr
    run("-m", "radiology.local_env", VAR_DIR=str(tmp_path))
    accepted = run("manage.py", "check", VAR_DIR=str(tmp_path))
    assert accepted.returncode == 0, accepted.stderr
    # What the environment sets wins over the file; the file fills the rest.
    show = ["manage.py", "shell", "-c", "from django.conf import settings as s; print(s.DEBUG, len(s.SECRET_KEY))"]
    assert run(*show, VAR_DIR=str(tmp_path)).stdout.splitlines()[-1].split() == ["True", "67"]
    assert run(*show, VAR_DIR=str(tmp_path), DEBUG="0").stdout.splitlines()[-1].split() == ["False", "67"]


def test_a_command_on_an_unmigrated_checkout_says_what_to_run_first(tmp_path):
    run("-m", "radiology.local_env", VAR_DIR=str(tmp_path))
    (tmp_path / "data").mkdir()
    result = run(
        "manage.py",
        "evaluate_model",
        "--data",
        str(tmp_path / "data"),
        "--json",
        str(tmp_path / "out.json"),
        VAR_DIR=str(tmp_path),
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "The database has no tables yet: run `.venv/bin/python manage.py migrate` first "
        "(`make run` does it and sets up the demo)."
    )


def test_an_unreachable_database_is_one_line_too(tmp_path):
    run("-m", "radiology.local_env", VAR_DIR=str(tmp_path))
    result = run(
        "manage.py", "issue_token", "someone", VAR_DIR=str(tmp_path), DATABASE_URL="postgres://postgres@127.0.0.1:1/x"
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("Cannot reach the database (") and "set DATABASE_URL" in result.stderr


def test_run_demo_uses_the_file():
    script = (PROJECT / "bin" / "run-demo").read_text()
    assert "-m radiology.local_env" in script and "local.env" in script
