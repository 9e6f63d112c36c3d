"""What the end-to-end benches (load.py, intended_use_api.py) start, own and wait for: a
database of their own, gunicorn and Celery workers as processes, and this process's Django on
the same database.
"""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PROJECT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def with_database(url, name):
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def bench_database_url(server_url, suffix):
    """`<DATABASE_URL's database>_<suffix>` on the same PostgreSQL server: a bench's own database."""
    parts = urlsplit(server_url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise SystemExit(f"the bench needs PostgreSQL in DATABASE_URL, not {parts.scheme or 'nothing'}")
    return with_database(server_url, f"{parts.path.lstrip('/') or 'pneumoscan'}_{suffix}")


def recreate_database(url):
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def drop_database(url):
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Processes:
    """Children started in their own process groups, so each stops with everything it forked."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.running = []

    def start(self, name, command, env):
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 (closed in stop())
        process = subprocess.Popen(
            command, cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.running.append((name, process, log))
        return process

    def check_alive(self):
        for name, process, _ in self.running:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with status {process.returncode}:\n{self.tail(name)}")

    def tail(self, name, lines=30):
        return "\n".join((self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])

    def stop(self):
        for _, process, _ in self.running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for _, process, log in self.running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.close()
        self.running = []


def child_environment(database_url, broker_url, work):
    """The environment of the processes a bench starts (and of its own Django): production-like
    settings on its own database, broker and media folder under `work`."""
    environment = dict(os.environ)
    environment.update(
        DJANGO_SETTINGS_MODULE="radiology.settings",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        SECURE_COOKIES="0",
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url,
        VAR_DIR=str(work / "var"),
        MEDIA_ROOT=str(work / "media"),
        LOG_LEVEL="WARNING",
    )
    return environment


def start_services(processes, environment, web_workers):
    """Migrate the database, start gunicorn on a free loopback port -> its base URL."""
    python = sys.executable
    manage = subprocess.run(
        [python, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
        cwd=PROJECT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if manage.returncode:
        raise RuntimeError(f"migrate failed:\n{manage.stderr[-3000:]}")
    port = free_port()
    processes.start(
        "gunicorn",
        [
            python,
            "-m",
            "gunicorn",
            "radiology.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(web_workers),
            "--timeout",
            "120",
        ],
        environment,
    )
    return f"http://127.0.0.1:{port}"


def start_workers(processes, environment, count):
    """`count` Celery worker processes, one task at a time each, as deployed."""
    for number in range(1, count + 1):
        processes.start(
            f"worker-{number}",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "radiology",
                "worker",
                "--pool=prefork",
                "--concurrency=1",
                f"--hostname=bench-{number}@%h",
                "--without-gossip",
                "--without-mingle",
                "--loglevel=INFO",
            ],
            environment,
        )


def wait_for_server(base_url, processes, timeout=90):
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processes.check_alive()
        try:
            if requests.get(f"{base_url}/login/", timeout=10).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or still loading
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server at {base_url} did not answer within {timeout}s")


def wait_for_workers(expected, processes, timeout=180):
    from radiology.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processes.check_alive()
        if len(app.control.ping(timeout=1.0) or []) >= expected:
            return
    raise RuntimeError(f"{expected} Celery workers did not answer within {timeout}s")


# --- this process's Django, on the same database -----------------------------------------


def setup_django(environment):
    os.environ.update(
        {
            key: environment[key]
            for key in (
                "DJANGO_SETTINGS_MODULE",
                "DEBUG",
                "SECRET_KEY",
                "ALLOWED_HOSTS",
                "DATABASE_URL",
                "CELERY_BROKER_URL",
                "VAR_DIR",
                "MEDIA_ROOT",
                "LOG_LEVEL",
            )
            if key in environment
        }
    )
    import django

    django.setup()


def activate_model(model_path):
    from classifier.artifact import ArtifactError
    from classifier.registry import ensure_bundled_model, register_model

    try:
        version = register_model(model_path, activate=True) if model_path else ensure_bundled_model()
    except (ArtifactError, OSError) as error:
        raise RuntimeError(f"no usable model ({error}); pass --model PATH") from error
    return version.version


def wait_for_predictions(scan_ids, deadline, processes):
    """Until every scan is predicted or failed, or the deadline (time.monotonic()) has passed."""
    from django.db import close_old_connections

    from radiology.models import Prediction, Scan

    last_report = 0.0
    while True:
        close_old_connections()
        predicted = Prediction.objects.filter(scan_id__in=scan_ids).count()
        failed = Scan.objects.filter(pk__in=scan_ids, status=Scan.Status.FAILED).count()
        if time.monotonic() - last_report > 10:
            print(f"  {predicted} predicted, {failed} failed, {len(scan_ids) - predicted - failed} waiting", flush=True)
            last_report = time.monotonic()
        if predicted + failed >= len(scan_ids) or time.monotonic() > deadline:
            return
        if processes:
            processes.check_alive()
        time.sleep(1)
