"""Logs: readable lines by default, one JSON object per line with LOG_FORMAT=json.

Every request gets an id (the client's `X-Request-ID` when it is a plain token, else a new one),
sent back in the response's `X-Request-ID` and attached to each log line written while the request
runs, with the user's id (never a patient's identity). RequestLogMiddleware writes one line per
request: method, path (without the query string, which may carry a patient's name), view,
status, total and database time.
"""

import contextvars
import datetime
import json
import logging
import re
import time
import uuid

from django.core.signals import request_finished
from django.db import connection
from django.utils.functional import empty

current_request = contextvars.ContextVar("current_request", default=None)
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# LogRecord attributes that are not the caller's `extra`.
STANDARD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "request_context",
}

request_log = logging.getLogger("radiology.requests")


def user_id_of(request):
    """The user's id once authentication has run, without triggering it (no query from a log line)."""
    user = vars(request).get("user")
    if user is None or getattr(user, "_wrapped", None) is empty:
        return None
    return user.pk if user.is_authenticated else None


class RequestContextFilter(logging.Filter):
    """Adds request_id and user_id (None outside a request) to every record, and request_context,
    their readable form (empty outside a request)."""

    def filter(self, record):
        request = current_request.get()
        record.request_id = getattr(request, "request_id", None) if request is not None else None
        record.user_id = user_id_of(request) if request is not None else None
        record.request_context = f" [request {record.request_id} user {record.user_id}]" if request else ""
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # Only plain values: an object passed as `extra` (django.request passes the request, whose
        # text would carry the query string) stays out.
        entry.update(
            {
                key: value
                for key, value in vars(record).items()
                if key not in STANDARD_ATTRIBUTES and isinstance(value, str | int | float | bool | type(None))
            }
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class QueryTimer:
    """connection.execute_wrapper: counts the queries of a request and their time."""

    def __init__(self):
        self.count = 0
        self.seconds = 0.0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.count += 1
            self.seconds += time.perf_counter() - started


class RequestLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        sent = request.META.get("HTTP_X_REQUEST_ID", "")
        request.request_id = sent if REQUEST_ID.match(sent) else uuid.uuid4().hex
        # Cleared when the response is closed (request_finished), so that what Django logs after
        # the middleware (django.request's 4xx/5xx lines) carries the id too.
        current_request.set(request)
        timer = QueryTimer()
        started = time.perf_counter()
        with connection.execute_wrapper(timer):
            response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        match = getattr(request, "resolver_match", None)
        request_log.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "method": request.method,
                "path": request.path,
                "view": match.view_name if match else None,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "db_queries": timer.count,
                "db_ms": round(timer.seconds * 1000, 1),
            },
        )
        return response


def forget_request(**kwargs):
    current_request.set(None)


request_finished.connect(forget_request, dispatch_uid="radiology.observability.logs.forget_request")


def logging_config(log_format, level):
    """Django's LOGGING for LOG_FORMAT `plain` (readable) or `json`."""
    formatters = {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s%(request_context)s: %(message)s"},
        "json": {"()": "radiology.observability.logs.JsonFormatter"},
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request": {"()": "radiology.observability.logs.RequestContextFilter"}},
        "formatters": {log_format: formatters[log_format]},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": log_format, "filters": ["request"]}},
        "root": {"handlers": ["console"], "level": level},
    }
