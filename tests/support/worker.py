"""A real `celery -A radiology worker` process for tests, on the pytest-django test database.

The worker is a subprocess, exactly as deployed: it imports the project, connects to the test
database on PostgreSQL and to a Redis broker, and shares MEDIA_ROOT with the test process. Tests
that use it must commit their data (`transactional_db`), or the worker cannot see it.
"""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
import redis
from django.conf import settings
from django.db import connection

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# A Redis database of its own, so the worker under test takes only the tasks its tests send and
# purging it touches nothing else (14 is the suite's default broker, 13 the load benchmark's);
# TEST_WORKER_REDIS_DB moves it, so that two checkouts can run their suites side by side.
WORKER_REDIS_DB = int(os.environ.get("TEST_WORKER_REDIS_DB", "11"))


def database_url_for_worker():
    """The URL of the database pytest-django created (call it after the test database is set up)."""
    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        return None
    credentials = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def dedicated_broker_url():
    """The configured Redis server, on the database kept for the worker under test."""
    parts = urlsplit(settings.CELERY_BROKER_URL)
    if parts.scheme not in ("redis", "rediss"):
        return None
    return urlunsplit(parts._replace(path=f"/{WORKER_REDIS_DB}"))


def purge_broker(broker_url):
    """Empty the broker's Redis database: queued, unacknowledged and scheduled messages alike."""
    redis.Redis.from_url(broker_url, socket_connect_timeout=3).flushdb()


def wait_until(condition, timeout, message, interval=0.2):
    """Poll condition() until it returns something true; after timeout seconds fail with message,
    a string or a function giving it (to describe the state at the end of the wait)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{message() if callable(message) else message} (waited {timeout} s)")
        time.sleep(interval)


@contextmanager
def publishing_to(broker_url):
    """Make this (test) process send tasks to broker_url.

    The write URL is the setting to change: Celery reads CELERY_BROKER_URL from the environment
    before its configuration. The app keeps its publishing connection pools once created, with no
    public call to point them elsewhere, so its references are dropped and the next send takes
    kombu's pool for the new URL (kombu keeps one pool per URL, open for when it is used again)."""
    from radiology.celery import app

    def use(url):
        app.conf.broker_write_url = url
        app._pool = None
        app.amqp._producer_pool = None

    previous = app.conf.get("broker_write_url")
    use(broker_url)
    try:
        yield
    finally:
        use(previous)


class CeleryWorker:
    """One `celery worker` subprocess: --concurrency=1, prefork pool, its log in a file.

    Started in a session of its own, so kill() takes down the main process and its pool child
    together, as when a machine or container dies.
    """

    READY_TIMEOUT = 120  # a cold start imports Django and Celery on a machine shared with other work

    def __init__(self, broker_url, database_url, media_root, log_dir, name="worker", env=None, beat_schedule=None):
        self.name = name
        self.broker_url = broker_url
        self.database_url = database_url
        self.media_root = Path(media_root)
        self.log_dir = Path(log_dir)
        self.extra_env = dict(env or {})
        self.beat_schedule = beat_schedule  # a file path: also run Celery beat inside the worker (-B)
        self.process = None
        self.log_path = None
        self.log_offset = 0
        self.starts = 0

    def environment(self):
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="radiology.settings",
            DATABASE_URL=self.database_url,
            CELERY_BROKER_URL=self.broker_url,
            MEDIA_ROOT=str(self.media_root),
            DEBUG="1",
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
            TF_CPP_MIN_LOG_LEVEL="2",
            CUDA_VISIBLE_DEVICES="",
        )
        env.update(self.extra_env)
        return env

    def command(self):
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "radiology",
            "worker",
            "--pool=prefork",
            "--concurrency=1",
            "--loglevel=INFO",
            "--hostname",
            f"test-{self.name}-{os.getpid()}-{self.starts}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        if self.beat_schedule:
            command += ["--beat", "--schedule", str(self.beat_schedule)]
        return command

    def start(self, purge=True):
        if purge:
            purge_broker(self.broker_url)
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"{self.name}-{self.starts}.log"
        self.log_offset = 0
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen(
                self.command(),
                cwd=PROJECT_ROOT,
                env=self.environment(),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_for_log(" ready.", self.READY_TIMEOUT)
        return self

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def log_text(self):
        """What the worker logged since it started, or since new_log_section()."""
        return self.log_path.read_bytes()[self.log_offset :].decode(errors="replace") if self.log_path else ""

    def new_log_section(self):
        """From now on log_text() shows only what comes next: one test's part of a shared worker's log."""
        self.log_offset = self.log_path.stat().st_size

    def wait_for_log(self, text, timeout):
        def seen():
            if text in self.log_text():
                return True
            if not self.running:
                raise AssertionError(
                    f"The worker exited (code {self.process.returncode}) before logging {text!r}:\n{self.log_tail()}"
                )
            return False

        wait_until(seen, timeout, lambda: f"The worker did not log {text!r}:\n{self.log_tail()}")

    def log_tail(self, lines=40):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def child_pids(self):
        """The pool processes: the ones that run tasks."""
        result = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in result.stdout.split()]

    def kill(self):
        """SIGKILL the main process and its pool child at once: nothing gets to clean up."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self):
        """Warm shutdown (SIGTERM), then SIGKILL if the worker is still there after a few seconds."""
        if not self.running:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
        # The pool child may outlive its parent for a moment: the whole group must be gone.
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


def worker_for_tests(log_dir, media_root, broker_url=None, **options):
    """A CeleryWorker on the test database and the dedicated broker, not yet started; skips the
    test when the suite does not run on PostgreSQL and Redis (a worker cannot share SQLite's
    in-memory test database)."""
    database_url = database_url_for_worker()
    broker_url = broker_url or dedicated_broker_url()
    if database_url is None or broker_url is None:
        pytest.skip("A real worker needs the suite on PostgreSQL and Redis (DATABASE_URL, CELERY_BROKER_URL).")
    return CeleryWorker(broker_url, database_url, media_root, log_dir, **options)
