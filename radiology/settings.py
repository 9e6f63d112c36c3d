"""PneumoScan settings: one module, everything that varies per site comes from the environment."""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from radiology.observability.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

# TensorFlow's C++ start-up chatter buries the worker's own log; warnings and errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def env_str(name, default=""):
    return os.environ.get(name, default)


def env_bool(name, default=False):
    return env_str(name, "1" if default else "0").strip().lower() in ("1", "true", "yes", "on")


def env_int(name, default):
    return int(env_str(name, str(default)))


def env_list(name, default=""):
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG")
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-development-key-only-used-with-debug-on"  # noqa: S105 (development only, refused without DEBUG)

# The audit chain's HMAC key: keep it when SECRET_KEY rotates, or older events fail verify_audit.
AUDIT_CHAIN_KEY = env_str("AUDIT_CHAIN_KEY") or SECRET_KEY

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# Writable state of this installation (SQLite file, filesystem broker) when no services are set.
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "classifier",
    "radiology",
    "radiology.pacs",
]

MIDDLEWARE = [
    # /healthz, /readyz, /metrics: before the host check and the HTTPS redirect (probes use neither).
    "radiology.observability.middleware.OperationsEndpointsMiddleware",
    "radiology.observability.metrics.RequestMetricsMiddleware",
    "radiology.observability.logs.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "radiology.content_security_policy.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Outside axes' middleware, so that its lockouts are among the refusals recorded.
    "radiology.audit_middleware.AuditTrailMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    "radiology.session_limits.SessionLimitMiddleware",
]

ROOT_URLCONF = "radiology.urls"
WSGI_APPLICATION = "radiology.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "radiology.permissions.role_context",
            ],
        },
    },
]

if not env_str("DATABASE_URL"):
    VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # make run's web, worker and beat share one file. WAL: readers never block the writer;
    # IMMEDIATE: a transaction takes the write lock when it begins, so it waits (up to the
    # timeout) instead of failing with "database is locked" when it upgrades from reading to writing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE", "timeout": 30}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Shared by every web process (API rate limits count across them): Redis in production.
CACHE_URL = env_str("CACHE_URL")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
    if CACHE_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

# Proxies in front of the web app that append to X-Forwarded-For (compose: 1, its TLS proxy).
# 0 ignores the header: the connection's address is the client's (radiology/client_address.py).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

AUTHENTICATION_BACKENDS = [
    # Axes first: it refuses a locked-out username/IP before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("LOGIN_COOLOFF_MINUTES", 15) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_CLIENT_IP_CALLABLE = "radiology.client_address.client_address"

# At least 12 characters (OWASP ASVS 2.1.1), not common, not all digits, not like the user's name.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Browser sessions (radiology/session_limits.py): signed out after this long without activity,
# and this long after signing in whatever happens; the page warns a minute before.
SESSION_IDLE_MINUTES = env_int("SESSION_IDLE_MINUTES", 15)
SESSION_MAX_HOURS = env_int("SESSION_MAX_HOURS", 12)
SESSION_COOKIE_AGE = SESSION_MAX_HOURS * 3600
# Flash messages stay on the server (Django's default keeps them in a cookie, readable by whoever holds it).
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# Links to choose a password (the admin role sends them; it never sets a password itself).
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "pneumoscan@localhost")

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Patient images are never under a public URL: they are served by a view that checks the role.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media-not-served/"
# Where images and heatmaps live: `local` (MEDIA_ROOT, a shared volume for workers elsewhere) or `s3`,
# any S3-compatible object store, so that workers on other machines need no shared volume. The
# bucket stays private: files are streamed through the app's role-checked, audited views.
MEDIA_STORAGE = env_str("MEDIA_STORAGE", "local").strip().lower()
if MEDIA_STORAGE == "s3":
    if not env_str("S3_BUCKET"):
        raise ImproperlyConfigured("MEDIA_STORAGE=s3 needs S3_BUCKET.")
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("S3_BUCKET"),
            "endpoint_url": env_str("S3_ENDPOINT_URL") or None,  # unset: AWS itself
            "region_name": env_str("S3_REGION") or None,
            "access_key": env_str("S3_ACCESS_KEY_ID") or None,  # unset: the instance's role or ~/.aws
            "secret_key": env_str("S3_SECRET_ACCESS_KEY") or None,
            "location": env_str("S3_PREFIX"),
            "default_acl": None,  # the bucket's own (private) policy
            "querystring_auth": True,  # any URL it ever makes is signed and short-lived
            "querystring_expire": 300,
            "file_overwrite": False,
        },
    }
elif MEDIA_STORAGE != "local":
    raise ImproperlyConfigured(f"MEDIA_STORAGE must be local or s3, not {MEDIA_STORAGE!r}.")

# Security: secure by default when DEBUG is off; HSTS is opt-in because it outlives a mistake.
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
# Sent only once SECURE_HSTS_SECONDS is set; a site with plain-HTTP subdomains turns them off.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
if env_bool("BEHIND_TLS_PROXY"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"
# Everything from this site, nothing inline (radiology/content_security_policy.py). Images may
# also be data: URIs (the API documentation's icons).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# Development serves static files straight from static/ (no collectstatic needed).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# Uploads: the size bound is checked before anything is stored; the pixel bound before decoding.
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_MB", 50) * 1024 * 1024
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 40_000_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_JSON_BYTES", 1024 * 1024)
# Files in one upload request (page or API): Django refuses more before reading them.
UPLOAD_MAX_FILES = env_int("UPLOAD_MAX_FILES", 20)
DATA_UPLOAD_MAX_NUMBER_FILES = UPLOAD_MAX_FILES
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_HANDLERS = [
    "django.core.files.uploadhandler.MemoryFileUploadHandler",  # files up to the size above
    "radiology.uploads.SizeBoundedUploadHandler",  # larger ones: a temporary file cut at MAX_UPLOAD_BYTES + 1
]

# Workflow rules.
TRIAGE_MAX_WAIT_MINUTES = env_int("TRIAGE_MAX_WAIT_MINUTES", 60)
# Opening a scan for review marks it as read by that doctor this long, renewed while the page is open.
REVIEW_CLAIM_MINUTES = env_int("REVIEW_CLAIM_MINUTES", 5)
REQUEUE_STALE_AFTER_SECONDS = env_int("REQUEUE_STALE_AFTER_SECONDS", 120)
# Scans waiting in the queue when a task starts are predicted with it, up to this many in all.
PREDICTION_BATCH_SIZE = env_int("PREDICTION_BATCH_SIZE", 8)
# TensorFlow/LiteRT threads per worker process; 0: the machine's cores / the worker's processes.
INFERENCE_THREADS = env_int("INFERENCE_THREADS", 0)
# The challenger's shadow predictions go to a queue of their own, so that no champion's prediction
# waits behind them: docker-compose runs a worker of their own; `make run`'s one worker takes both.
CHALLENGER_QUEUE = env_str("CHALLENGER_QUEUE", "challenger")
# The key of the patient pseudonyms in `export_reviewed`'s manifests: the same patient gets the same
# pseudonym in every export while it stays the same (by default the SECRET_KEY).
EXPORT_SALT = env_str("EXPORT_SALT") or SECRET_KEY

# The model shipped with the product; `make run` registers and activates it.
CLASSIFIER_MODEL_PATH = Path(
    env_str(
        "CLASSIFIER_MODEL_PATH",
        str(BASE_DIR / "classifier" / "bundled" / "mnv2-ensemble-2026-12-02" / "pneumonia.keras"),
    )
)

# Celery: Redis in production; a filesystem broker (no server) by default.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
_broker_folder = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_folder.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_folder),
        "data_folder_out": str(_broker_folder),
        "processed_folder": str(VAR_DIR / "broker-processed"),
        "control_folder": str(VAR_DIR / "broker-control"),
        "store_processed": False,
    }
else:
    # A killed worker's unacknowledged task returns after this many seconds; it must exceed
    # the longest task (hard time limit below) or a running task would be delivered twice.
    # Sending a task while Redis is down gives up after one quick retry instead of retrying for
    # the connection timeout (6 s per task): the upload answers at once, the scan stays queued
    # and the stale-scan sweep sends it when Redis is back.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 300),
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.5,
        "interval_max": 0.5,
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A new pool process loads TensorFlow and the model before it reports for work (tasks.py,
# load_model_in_worker): several seconds, more on a busy machine. Celery kills one that takes
# over 4 s by default and starts another, which does the same, in a loop.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = 120
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 240)
# A claimed scan belongs to its task run until this lease runs out (past the hard time limit, the
# run is dead); then the sweep sends it again. Each claim is an attempt; the last one fails it.
PREDICTION_LEASE_SECONDS = env_int("PREDICTION_LEASE_SECONDS", CELERY_TASK_TIME_LIMIT + 30)
PREDICTION_MAX_ATTEMPTS = env_int("PREDICTION_MAX_ATTEMPTS", 3)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "requeue-stale-scans": {
        "task": "radiology.tasks.requeue_stale_scans",
        "schedule": env_int("REQUEUE_SWEEP_SECONDS", 60),
    },
}

# PACS over DICOMweb (radiology.pacs): unset = no PACS. With it set, the beat schedule polls the
# archive for new CR/DX instances and sends the results (SR, secondary capture) from the outbox.
PACS_DICOMWEB_URL = env_str("PACS_DICOMWEB_URL").strip().rstrip("/")
PACS_USERNAME = env_str("PACS_USERNAME")
PACS_PASSWORD = env_str("PACS_PASSWORD")
PACS_POLL_SECONDS = env_int("PACS_POLL_SECONDS", 10)
PACS_TIMEOUT_SECONDS = env_int("PACS_TIMEOUT_SECONDS", 30)
# 0: every CR/DX series in the archive is looked at (known ones skipped); N: only studies dated
# within the last N days (faster on a large archive; a study sent later than that is missed).
PACS_POLL_STUDY_DAYS = env_int("PACS_POLL_STUDY_DAYS", 0)
if PACS_DICOMWEB_URL:
    CELERY_BEAT_SCHEDULE["pacs-poll"] = {"task": "radiology.pacs.tasks.poll_pacs", "schedule": PACS_POLL_SECONDS}
    CELERY_BEAT_SCHEDULE["pacs-send-outbox"] = {
        "task": "radiology.pacs.tasks.send_outbox",
        "schedule": PACS_POLL_SECONDS,
    }

# API tokens expire this many days after they are issued.
API_TOKEN_DAYS = env_int("API_TOKEN_DAYS", 90)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "radiology.api.authentication.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Every endpoint: logged in, and the role rules of radiology.permissions for its action.
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "radiology.api.permissions.RoleActionPermission",
    ],
    # JSON only: one format for answers and errors; people browse the API at /api/docs/.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "radiology.api.schema.ErrorDocumentingAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "radiology.api.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "radiology.api.errors.api_exception_handler",
    "DEFAULT_METADATA_CLASS": None,  # no OPTIONS introspection: the OpenAPI schema documents the API
    # Per-user (and, for the token exchange, per-address) limits, counted in the cache: set
    # CACHE_URL so that all web processes share one count.
    "DEFAULT_THROTTLE_CLASSES": [
        "radiology.api.throttling.AnonRateThrottle",
        "radiology.api.throttling.UserRateThrottle",
    ],
    # Our throttles read the address through radiology.client_address; any other DRF code agrees.
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("API_ANON_RATE", "30/minute"),
        "user": env_str("API_USER_RATE", "1200/minute"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "PneumoScan API",
    "DESCRIPTION": "Chest X-ray upload, AI pneumonia prediction, doctor review and accuracy metrics.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SCHEMA_PATH_PREFIX": r"/api/v1",  # operations are tagged by resource: patients, scans, ...
    "COMPONENT_SPLIT_REQUEST": True,  # separate request/response components, so uploads show as binary
    "ENUM_NAME_OVERRIDES": {
        "LabelEnum": "radiology.models.Label",  # a prediction's and a review's labels are one set
        "DriftBandEnum": "radiology.monitoring.BANDS",  # the probabilities' and the image scores' drift
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    # WCAG 2.1 AA under axe-core: without deep links each operation's summary button holds no link
    # (nested-interactive); examples unhighlighted, as the highlighter's colours lack contrast.
    "SWAGGER_UI_SETTINGS": {"deepLinking": False, "syntaxHighlight": {"activated": False}},
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Prometheus (radiology/observability/metrics.py): /metrics needs this bearer token; unset, it answers
# direct loopback requests only. A Celery worker serves its own samples on WORKER_METRICS_PORT (0: off).
METRICS_TOKEN = env_str("METRICS_TOKEN")
WORKER_METRICS_PORT = env_int("WORKER_METRICS_PORT", 0)
WORKER_METRICS_ADDR = env_str("WORKER_METRICS_ADDR", "127.0.0.1")
# Set for gunicorn and Celery (several processes each): prometheus_client reads it from the
# environment itself; the folder must exist, and be emptied before the processes start.
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR")
if PROMETHEUS_MULTIPROC_DIR:
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)

# LOG_FORMAT=json: one JSON object per line (request id, user id, timings); plain: readable lines.
LOG_FORMAT = env_str("LOG_FORMAT", "plain").strip().lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}.")
LOGGING = logging_config(LOG_FORMAT, env_str("LOG_LEVEL", "INFO"))
# The DICOMweb client logs every request at INFO: the PACS poll would fill the log every few seconds.
LOGGING.setdefault("loggers", {})["dicomweb_client"] = {"level": "WARNING"}
# Celery's own root logger setup would replace the JSON lines with its format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = LOG_FORMAT != "json"
