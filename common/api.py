"""API error format shared by every endpoint.

DRF's field errors stay as they are under ``errors``; ``detail`` always holds
one sentence a person can act on, so scripts can print it as it is.
"""

import logging
from typing import Any

from django.core.exceptions import (
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

# How long a client should wait before retrying when the database is away
# (a PostgreSQL restart takes a few seconds).
RETRY_AFTER_SECONDS = 5
DATABASE_UNAVAILABLE_MESSAGE = (
    "The database is unavailable for a moment; nothing was stored. "
    f"Retry in {RETRY_AFTER_SECONDS} s (devices: with the same Idempotency-Key)."
)
DATABASE_UNAVAILABLE = {
    503: OpenApiResponse(
        description="Database (or model) unavailable for a moment; retry after `Retry-After` "
        "seconds with the same idempotency key."
    )
}


def _first_message(errors: Any, prefix: str = "") -> str:
    if isinstance(errors, dict):
        for field, value in errors.items():
            name = "" if field == "non_field_errors" else str(field)
            label = f"{prefix}.{name}" if prefix and name else (name or prefix)
            return _first_message(value, label)
        return "Invalid request."
    if isinstance(errors, list | tuple) and errors:
        return _first_message(errors[0], prefix)
    text = str(errors)
    return f"{prefix}: {text}" if prefix else text


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of turning them into text.

    DRF's CharField reads ``0`` as ``"0"``: a client that sends a number where a
    string belongs gets told, rather than having it stored silently.
    """

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A BooleanField that refuses numbers: JSON ``0``/``1`` is not a boolean.

    Form fields (text) keep DRF's reading of "true"/"false"; JSON must say true or false.
    """

    default_error_messages = {"not_a_boolean": "Must be true or false."}

    def to_internal_value(self, data):
        if not isinstance(data, bool | str):
            self.fail("not_a_boolean")
        return super().to_internal_value(data)


class _GivenEmptyIsRefused:
    """A query-string field: ``?station=`` (given, empty) is refused, not read as absent.

    DRF reads an empty form value of an optional field as "not given"; for a filter that
    would answer for every station instead of none, so it is refused instead.
    """

    def get_value(self, dictionary):
        if self.field_name in dictionary and dictionary.get(self.field_name) == "":
            return ""
        return super().get_value(dictionary)


class QueryCharField(_GivenEmptyIsRefused, serializers.CharField):
    """A text filter in a query string; given empty, it is refused (blank)."""


class QueryIntegerField(_GivenEmptyIsRefused, serializers.IntegerField):
    """A number in a query string; given empty, it is refused (not a number)."""


class StrictPageSize:
    """Pagination mixin: a ``page_size`` that is not a whole number >= 1 is refused (400).

    DRF's paginations fall back to the default size silently; a client asking for
    ``page_size=abc`` should learn that it gets 50, not guess.
    """

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param or "", None)
        if raw is not None and (not raw.isdigit() or int(raw) < 1):
            raise exceptions.ValidationError(
                {self.page_size_query_param: "Must be a whole number, 1 or more."}
            )
        return super().get_page_size(request)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter.get("name") == self.page_size_query_param:
                parameter["schema"] = {**parameter.get("schema", {}), "minimum": 1}
        return parameters


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "The request is larger than this endpoint accepts."
    default_code = "payload_too_large"


def database_unavailable(exc: Exception) -> bool:
    """Whether ``exc`` says the database cannot be reached (restart, failover, network)."""
    return isinstance(exc, OperationalError | InterfaceError)


def _log_database_unavailable(exc: Exception) -> None:
    logger.warning("Database unavailable, answered 503: %s: %s", type(exc).__name__, exc)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler with one-sentence ``detail``s, and 503 + Retry-After when the DB is away."""
    if database_unavailable(exc):
        _log_database_unavailable(exc)
        return Response(
            {"detail": DATABASE_UNAVAILABLE_MESSAGE},
            status=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, TooManyFilesSent):
        exc = exceptions.ParseError("Too many files in one request; send one image per request.")
    elif isinstance(exc, TooManyFieldsSent):
        exc = exceptions.ParseError("Too many form fields in one request.")
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    if isinstance(exc, DjangoValidationError):
        exc = serializers.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = response.data
        response.data = {"detail": _first_message(errors), "errors": errors}
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {
            "detail": str(response.data["detail"]),
            **{k: v for k, v in response.data.items() if k != "detail"},
        }
    return response


class DatabaseUnavailableMiddleware:
    """503 with ``Retry-After`` for views outside DRF (pages, admin) when the DB is away.

    JSON under ``/api/``, a short text page elsewhere; any other error stays a 500.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not database_unavailable(exc):
            return None
        _log_database_unavailable(exc)
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        if request.path.startswith("/api/"):
            return JsonResponse(
                {"detail": DATABASE_UNAVAILABLE_MESSAGE}, status=503, headers=headers
            )
        return HttpResponse(
            f"LineSight's database is unavailable for a moment. Reload in "
            f"{RETRY_AFTER_SECONDS} seconds.",
            status=503,
            content_type="text/plain; charset=utf-8",
            headers=headers,
        )


# --- OpenAPI: the error answers every operation can give --------------------------------

ERROR_COMPONENT = "Error"
ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error: one sentence in `detail`; field errors, if any, in `errors`.",
    "properties": {
        "detail": {"type": "string", "description": "What went wrong, for a person to read."},
        "errors": {
            "type": "object",
            "additionalProperties": True,
            "description": "For invalid input: the messages per field, as DRF gives them.",
        },
    },
    "required": ["detail"],
}
_RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer"},
        "description": "Seconds to wait before sending the same request again.",
    }
}
_EVERY_OPERATION = {
    "401": "No credentials, or unknown ones (token, device token or session).",
    "403": "Authenticated, but this account or station may not do this.",
    "503": "The database is unavailable for a moment; nothing was changed. Send the same "
    "request again after `Retry-After` seconds.",
}
_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _error_codes(path: str, operation: dict) -> dict[str, str]:
    codes = dict(_EVERY_OPERATION)
    query = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
    if "{" in path:
        codes["404"] = "Nothing at this address (or not visible to these credentials)."
    elif "cursor" in query:
        codes["404"] = "The cursor is not one this list gave (DRF: 'Invalid cursor'); start over."
    takes_query = bool(query)
    if operation.get("requestBody") or takes_query:
        codes["400"] = "Invalid input; nothing was changed."
    if operation.get("requestBody"):
        codes["415"] = "The body's content type is not one this operation reads."
    return codes


_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _sends_files(schema: dict, components: dict) -> bool:
    if "$ref" in schema:
        schema = components.get(schema["$ref"].rsplit("/", 1)[-1], {})
    for field in schema.get("properties", {}).values():
        if field.get("format") == "binary" or field.get("items", {}).get("format") == "binary":
            return True
    return False


def _json_unless_files(operation: dict, components: dict) -> None:
    """Bodies without a file are documented as JSON only: a form can't say null or an empty
    list, so the same schema would be false for it (DRF still reads forms, for the
    browsable API)."""
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return
    if not any(_sends_files(content[kind].get("schema", {}), components) for kind in content):
        for kind in _FORM_TYPES:
            content.pop(kind, None)


def document_error_responses(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: document the errors every view can answer.

    Also: a body without files is documented as JSON only (see ``_json_unless_files``).

    Authentication (401), permissions (403), an unknown object in the path (404), invalid
    input (400), an unreadable content type (415) and the database away (503, see
    ``exception_handler``) come from DRF and this module, not from each view; a view's own
    description of one of them is kept.
    """
    result.setdefault("components", {}).setdefault("schemas", {})
    result["components"]["schemas"].setdefault(ERROR_COMPONENT, ERROR_SCHEMA)
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _HTTP_METHODS:
                continue
            _json_unless_files(operation, result["components"]["schemas"])
            responses = operation.setdefault("responses", {})
            for code, description in _error_codes(path, operation).items():
                documented = responses.setdefault(code, {"description": description})
                documented.setdefault("content", content)
            for code in ("429", "503"):
                if code in responses:
                    responses[code].setdefault("headers", _RETRY_AFTER)
    return result
