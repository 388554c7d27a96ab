"""The rules of a posted frame, in one place: the DRF view and the lean ASGI route call them.

Everything here takes a DRF ``Request`` (multipart parser, station token
authentication) and returns or raises what DRF answers: the view lets DRF
handle what is raised, the lean route (``inspection.api.frames_asgi``) hands
it to ``frame_error_response``, which is DRF's own handling of it.
"""

import logging
import re

from django.conf import settings
from django.urls import reverse
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from common.api import RETRY_AFTER_SECONDS, PayloadTooLarge, exception_handler
from inspection.api.overload import ServerBusy, log_overload
from inspection.api.permissions import station_of
from inspection.api.serializers import (
    IDEMPOTENCY_KEY_PATTERN,
    InspectionCreateSerializer,
    inspection_representation,
)
from inspection.runtime import RuntimeLoadError
from inspection.services import (
    FrameAlreadyStored,
    FrameRefused,
    StorageRefused,
    inspection_create,
)
from masterdata.models import Station

logger = logging.getLogger(__name__)

# Multipart framing around the image: boundaries, headers and the small fields.
MULTIPART_OVERHEAD = 64 * 1024


def frame_request_limit() -> int:
    """The most bytes a frame's whole request may have: the image plus its framing."""
    return settings.LINESIGHT["MAX_FRAME_BYTES"] + MULTIPART_OVERHEAD


def frame_post(request: Request, *, started: float) -> Response:
    """Judge the frame of an admitted, authenticated, throttled POST and answer it.

    201 with the inspection and its ``Location``; 200 for a retry of a stored
    frame; a refusal's status otherwise. Invalid input raises DRF's exceptions.
    """
    limit = settings.LINESIGHT["MAX_FRAME_BYTES"]
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > limit + MULTIPART_OVERHEAD:
        raise PayloadTooLarge(f"The request is {declared:,} bytes; frames may be {limit:,} bytes.")
    if len(request.FILES.getlist("image")) > 1 or len(request.FILES) > 1:
        raise exceptions.ValidationError({"image": "Send exactly one image per request."})
    serializer = InspectionCreateSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    station = frame_station(request, data["station"])
    key = idempotency_key(request, data.get("frame_id", ""))
    upload = data["image"]
    if upload.size > limit:
        raise PayloadTooLarge(f"The image is {upload.size:,} bytes; the limit is {limit:,}.")
    try:
        inspection = inspection_create(
            station=station,
            image=upload.read(),
            product=data.get("product"),
            serial=data["serial"],
            lot=data["lot"],
            captured_at=data.get("captured_at"),
            edge=data["edge"],
            idempotency_key=key,
            started=started,
        )
    except FrameAlreadyStored as stored:
        body = inspection_representation(stored.inspection, request)
        return Response(body, status=status.HTTP_200_OK)
    except FrameRefused as refused:
        return refusal_response(refused)
    except RuntimeLoadError as exc:
        logger.exception("Model could not be loaded for station %s", station.code)
        return Response(
            {"detail": f"The station's model could not be loaded on this server: {exc}"},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    body = inspection_representation(inspection, request)
    location = request.build_absolute_uri(reverse("api-inspection-detail", args=[inspection.pk]))
    return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})


def idempotency_key(request: Request, frame_id: str) -> str:
    """The frame's key: the ``Idempotency-Key`` header or the ``frame_id`` field."""
    header = request.headers.get("Idempotency-Key", "")
    if header and not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, header):
        raise exceptions.ValidationError(
            {"Idempotency-Key": "Give 1-100 visible ASCII characters (a UUID is fine)."}
        )
    if header and frame_id and header != frame_id:
        raise exceptions.ValidationError(
            {"frame_id": "The Idempotency-Key header and frame_id differ; send one key."}
        )
    return header or frame_id


def frame_station(request: Request, code: str) -> Station:
    """The station named in the form; a device may only post for its own."""
    device_station = station_of(request)
    if device_station is not None and device_station.code == code:
        return device_station  # already loaded by authentication
    station = Station.objects.select_related("line__plant").filter(code=code).first()
    if station is None:
        raise exceptions.ValidationError({"station": f"Unknown station '{code}'."})
    if device_station is not None:
        raise exceptions.PermissionDenied(
            f"This token belongs to station {device_station.code}, not {code}."
        )
    return station


def refusal_response(refused: FrameRefused) -> Response:
    """A refused frame's answer; a storage refusal (503) says when to try again."""
    if isinstance(refused, StorageRefused):
        logger.error("Frame refused, storage would not take it: %s", refused.message)
        return Response(
            {"detail": refused.message},
            status=refused.status,
            headers={"Retry-After": str(settings.LINESIGHT["STORAGE_RETRY_AFTER_SECONDS"])},
        )
    return Response({"detail": refused.message}, status=refused.status)


def frame_error_response(exc: Exception, request: Request, authenticate_header: str) -> Response:
    """What DRF's ``APIView.handle_exception`` answers for ``exc`` raised by a frame POST.

    Re-raises what DRF would not handle (a bug: Django answers 500).
    """
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        if authenticate_header:
            exc.auth_header = authenticate_header
        else:
            exc.status_code = status.HTTP_403_FORBIDDEN
    response = exception_handler(exc, {"request": request, "args": (), "kwargs": {}})
    if response is None:
        raise exc
    response.exception = True
    if isinstance(exc, ServerBusy):
        quiet_overload(response)
    return response


def quiet_overload(response: Response) -> None:
    """Expected under overload: one warning a second, not an ERROR per refusal."""
    response._has_been_logged = True
    log_overload()
