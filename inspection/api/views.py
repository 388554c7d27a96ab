"""The device API: frames in, verdicts out; inspections and their images; edge manifests."""

import logging
import time

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.views import APIView

from common.api import (
    DATABASE_UNAVAILABLE,
    StrictPageSize,
)
from inspection.api.filters import InspectionFilter
from inspection.api.frames import frame_post, quiet_overload
from inspection.api.overload import (
    ServerBusy,
    StationFrameRate,
    frames_in_flight,
)
from inspection.api.permissions import CanPostFrames, CanReadInspections, station_of
from inspection.api.retention import image_removed_response
from inspection.api.serializers import (
    IDEMPOTENCY_KEY_HELP,
    InspectionCreateSerializer,
    InspectionSerializer,
)
from inspection.selectors import inspection_queryset

logger = logging.getLogger(__name__)

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
            quiet_overload(response)
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
        return frame_post(request, started=self.started)


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
