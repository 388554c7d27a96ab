"""API error format shared by every endpoint.

DRF's field errors stay as they are under ``errors``; ``detail`` always holds
one sentence a person can act on, so scripts can print it as it is.
"""

from typing import Any

from django.core.exceptions import (
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


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


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "The request is larger than this endpoint accepts."
    default_code = "payload_too_large"


def exception_handler(exc: Exception, context: dict) -> Response | None:
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
