"""The device API: frames in, verdicts out; inspections and their images; edge manifests."""

import logging
import re
import time

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import (
    DATABASE_UNAVAILABLE,
    RETRY_AFTER_SECONDS,
    PayloadTooLarge,
    StrictPageSize,
)
from inspection.api.filters import InspectionFilter
from inspection.api.overload import (
    ServerBusy,
    StationFrameRate,
    frames_in_flight,
    log_overload,
)
from inspection.api.permissions import CanPostFrames, CanReadInspections, station_of
from inspection.api.retention import image_removed_response
from inspection.api.serializers import (
    IDEMPOTENCY_KEY_HELP,
    IDEMPOTENCY_KEY_PATTERN,
    InspectionCreateSerializer,
    InspectionSerializer,
    inspection_representation,
)
from inspection.runtime import RuntimeLoadError
from inspection.selectors import inspection_queryset
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


READ_ERRORS = {
    401: OpenApiResponse(description="Missing, wrong or revoked token."),
    403: OpenApiResponse(
        description="No permission to read inspections, or another station's frame."
    ),
    **DATABASE_UNAVAILABLE,
}
NOT_FOUND = {404: OpenApiResponse(description="No such inspection.")}


class InspectionCursor(StrictPageSize, CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


# Devices post frames here and get the verdict; readers list inspections, newest first.
# (No docstring: drf-spectacular would publish it as the operations' description.)
class InspectionListCreateView(generics.ListCreateAPIView):
    serializer_class = InspectionSerializer
    filterset_class = InspectionFilter
    pagination_class = InspectionCursor

    def dispatch(self, request, *args, **kwargs):
        self.started = time.perf_counter()
        if request.method != "POST":
            return super().dispatch(request, *args, **kwargs)
        # A frame holds its slot until its answer is built; over the limit, initial()
        # refuses it before authentication, parsing or any database work.
        with frames_in_flight.slot(settings.LINESIGHT["MAX_FRAMES_IN_FLIGHT"]) as admitted:
            self.admitted = admitted
            return super().dispatch(request, *args, **kwargs)

    def initial(self, request, *args, **kwargs):
        if request.method == "POST" and not self.admitted:
            raise ServerBusy(settings.LINESIGHT["MAX_FRAMES_IN_FLIGHT"])
        super().initial(request, *args, **kwargs)

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        if isinstance(exc, ServerBusy):
            # Expected under overload: one warning a second, not an ERROR per refusal.
            response._has_been_logged = True
            log_overload()
        return response

    def get_permissions(self):
        return [CanPostFrames()] if self.request.method == "POST" else [CanReadInspections()]

    def get_throttles(self):
        return [StationFrameRate()] if self.request.method == "POST" else []

    def get_parsers(self):
        if getattr(self, "request", None) is not None and self.request.method != "POST":
            return super().get_parsers()
        return [MultiPartParser()]

    def get_queryset(self):
        queryset = inspection_queryset()
        station = station_of(self.request)
        return queryset.filter(station=station) if station is not None else queryset

    @extend_schema(
        summary="Inspections, newest first",
        description="Cursor-paginated; follow `next`. Devices see only their own station's.",
        responses={200: InspectionSerializer(many=True), **READ_ERRORS},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Send a frame, get its verdict",
        request={"multipart/form-data": InspectionCreateSerializer},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description=IDEMPOTENCY_KEY_HELP,
            )
        ],
        responses={
            200: OpenApiResponse(
                InspectionSerializer,
                description="A retry of a frame already stored under this idempotency key: "
                "the stored result, nothing new stored.",
            ),
            201: InspectionSerializer,
            400: OpenApiResponse(description="Bad image or fields; nothing stored."),
            401: OpenApiResponse(description="Missing, wrong or revoked token."),
            403: OpenApiResponse(description="Token of another station, or inactive station."),
            409: OpenApiResponse(
                description="No deployment, or an edge result of another version."
            ),
            413: OpenApiResponse(description="Image over the size limit."),
            422: OpenApiResponse(description="Idempotency key already used for another image."),
            429: OpenApiResponse(
                description="The station sends faster than its frame rate; nothing stored. "
                "Wait `Retry-After` seconds."
            ),
            503: OpenApiResponse(
                description="The server cannot take the frame now: as many frames in flight "
                "as it may judge, the database restarting, the model not loaded yet, or the "
                "storage full / unavailable. "
                "Nothing stored; retry after `Retry-After` seconds with the same idempotency key."
            ),
        },
    )
    def post(self, request, *args, **kwargs):
        limit = settings.LINESIGHT["MAX_FRAME_BYTES"]
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        if declared > limit + MULTIPART_OVERHEAD:
            raise PayloadTooLarge(
                f"The request is {declared:,} bytes; frames may be {limit:,} bytes."
            )
        if len(request.FILES.getlist("image")) > 1 or len(request.FILES) > 1:
            raise exceptions.ValidationError({"image": "Send exactly one image per request."})
        serializer = InspectionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        station = self._station(request, data["station"])
        key = self._idempotency_key(request, data.get("frame_id", ""))
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
                started=self.started,
            )
        except FrameAlreadyStored as stored:
            body = inspection_representation(stored.inspection, request)
            return Response(body, status=status.HTTP_200_OK)
        except FrameRefused as refused:
            return _refusal(refused)
        except RuntimeLoadError as exc:
            logger.exception("Model could not be loaded for station %s", station.code)
            return Response(
                {"detail": f"The station's model could not be loaded on this server: {exc}"},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        body = inspection_representation(inspection, request)
        location = request.build_absolute_uri(
            reverse("api-inspection-detail", args=[inspection.pk])
        )
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})

    @staticmethod
    def _idempotency_key(request, frame_id: str) -> str:
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

    @staticmethod
    def _station(request, code: str) -> Station:
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


def _refusal(refused: FrameRefused) -> Response:
    """A refused frame's answer; a storage refusal (503) says when to try again."""
    if isinstance(refused, StorageRefused):
        logger.error("Frame refused, storage would not take it: %s", refused.message)
        return Response(
            {"detail": refused.message},
            status=refused.status,
            headers={"Retry-After": str(settings.LINESIGHT["STORAGE_RETRY_AFTER_SECONDS"])},
        )
    return Response({"detail": refused.message}, status=refused.status)


class InspectionDetailView(generics.RetrieveAPIView):
    serializer_class = InspectionSerializer
    permission_classes = [CanReadInspections]

    def get_queryset(self):
        return inspection_queryset()

    @extend_schema(
        summary="One inspection",
        responses={200: InspectionSerializer, **READ_ERRORS, **NOT_FOUND},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class InspectionImageView(APIView):
    permission_classes = [CanReadInspections]

    @extend_schema(
        summary="The frame as the camera sent it",
        responses={
            (200, "image/*"): OpenApiTypes.BINARY,
            **READ_ERRORS,
            404: OpenApiResponse(
                description="No such inspection, or its image is missing from storage."
            ),
            410: OpenApiResponse(
                description="The image was removed by the plant's retention policy; the "
                "inspection is kept. Browsers (Accept: image/*) get a placeholder picture."
            ),
        },
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)],
    )
    def get(self, request, pk: int):
        inspection = get_object_or_404(inspection_queryset(), pk=pk)
        self.check_object_permissions(request, inspection)
        missing = exceptions.NotFound(
            f"The image of frame #{pk} is missing from storage (lost after it was judged); "
            "the inspection itself is kept."
        )
        if inspection.image_deleted_at is not None:
            return image_removed_response(request, inspection)
        if not inspection.image.name:
            raise missing  # cleared by the orphans sweep
        # Frames are small (MAX_FRAME_BYTES): one read beats streaming a sync
        # file iterator through the ASGI handler.
        try:
            with inspection.image.storage.open(inspection.image.name, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            raise missing from None
        response = HttpResponse(data, content_type=inspection.image_content_type)
        response["Cache-Control"] = "private, max-age=86400, immutable"
        return response
