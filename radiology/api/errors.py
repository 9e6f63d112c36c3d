"""One error format for every API response that is not a success:

    {"error": {"status": 400, "code": "invalid", "message": "...", "fields": {"mrn": ["..."]}}}

`fields` is present only when the error is about named input fields. Input valid in form is not
refused with 400: a referenced object that does not exist gives 404, a request that conflicts with
the current state (a duplicate MRN, a re-queue of a predicted scan, a model version in the wrong
state) gives 409, each with the same body. Nothing internal (stack
traces, exception text of unexpected errors) ever reaches the client; unexpected errors are logged.
"""

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.exceptions import ErrorDetail
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler, set_rollback

from classifier.conflicts import StateConflict

log = logging.getLogger(__name__)

NON_FIELD_KEYS = ("non_field_errors", "__all__", "detail")


class TooManyFiles(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Too many files in one request."
    default_code = "too_many_files"


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


def error_body(status_code, code, message, fields=None):
    error = {"status": status_code, "code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


class Conflict(exceptions.ValidationError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class ReferencedNotFound(exceptions.ValidationError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "not_found"


# Field error codes that say the input is well formed: what it names is missing, or already taken.
STATUS_OF_CODES = {"does_not_exist": ReferencedNotFound, "unique": Conflict}


def api_exception_handler(exc, context):
    if isinstance(exc, StateConflict):
        exc = Conflict(as_serializer_error(exc))
    elif isinstance(exc, DjangoValidationError):
        # Domain actions validate with Django's ValidationError: the same 400 as a serializer's.
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, RequestDataTooBig):
        # DRF reads request.body before any parser for JSON, so Django's own bound fires first.
        exc = RequestTooLarge(
            f"The request body is larger than the {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} byte limit."
        )
    elif isinstance(exc, TooManyFilesSent):
        exc = TooManyFiles(f"At most {settings.UPLOAD_MAX_FILES} files may be sent in one request; nothing was stored.")
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    if type(exc) is exceptions.ValidationError:
        exc = by_error_codes(exc)
    render_as_json(context.get("request"))
    response = exception_handler(exc, context)
    if response is None:
        view = context.get("view")
        log.exception("Unexpected error in %s", type(view).__name__ if view else "the API", exc_info=exc)
        set_rollback()
        return Response(
            error_body(500, "server_error", "An internal error occurred; it has been logged."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    response.data = error_body(response.status_code, error_code(exc), *message_and_fields(exc, response.data))
    return response


def by_error_codes(exc):
    """A validation error whose every message is of one kind in STATUS_OF_CODES takes its status."""
    codes = set(flatten_codes(exc.get_codes()))
    if len(codes) == 1 and (kind := STATUS_OF_CODES.get(codes.pop())):
        return kind(exc.detail)
    return exc


def flatten_codes(codes):
    if isinstance(codes, str):
        return [codes]
    if isinstance(codes, dict):
        codes = codes.values()
    return [code for item in codes for code in flatten_codes(item)]


def render_as_json(request):
    """Errors are JSON even where successes are not (the schema's YAML, image files)."""
    if request is not None:
        request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type


def error_code(exc):
    if isinstance(exc, (Conflict, ReferencedNotFound)):
        return exc.default_code
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else exc.default_code


def message_and_fields(exc, data):
    if isinstance(exc, exceptions.ValidationError):
        return validation_message_and_fields(data)
    if isinstance(data, dict) and "detail" in data:
        return str(data["detail"]), None
    return str(data), None


def validation_message_and_fields(data):
    if isinstance(data, list):
        return " ".join(flatten(data)) or "Invalid input.", None
    fields = {key: flatten(value) for key, value in data.items() if key not in NON_FIELD_KEYS}
    general = [message for key in NON_FIELD_KEYS for message in flatten(data.get(key, []))]
    if general:
        return " ".join(general), fields or None
    names = ", ".join(fields)
    return f"Invalid input: {names}." if names else "Invalid input.", fields or None


def flatten(value):
    """Error messages of one field as a flat list of strings (nested serializers give dicts/lists)."""
    if isinstance(value, (str, ErrorDetail)):
        return [str(value)]
    if isinstance(value, dict):
        return [f"{key}: {message}" for key, nested in value.items() for message in flatten(nested)]
    return [message for item in value for message in flatten(item)]
