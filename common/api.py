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
