"""The device API: frames in, verdicts out; inspections and their images; edge manifests."""

import logging
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

from common.api import PayloadTooLarge
from inspection.api.filters import InspectionFilter
from inspection.api.permissions import CanPostFrames, CanReadInspections, station_of
from inspection.api.serializers import (
    InspectionCreateSerializer,
    InspectionSerializer,
    inspection_representation,
)
from inspection.runtime import RuntimeLoadError
from inspection.selectors import inspection_queryset
from inspection.services import EdgeResult, FrameRefused, inspection_create
from masterdata.models import Station

logger = logging.getLogger(__name__)

# Multipart framing around the image: boundaries, headers and the small fields.
MULTIPART_OVERHEAD = 64 * 1024


class InspectionCursor(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class InspectionListCreateView(generics.ListAPIView):
    serializer_class = InspectionSerializer
    filterset_class = InspectionFilter
    pagination_class = InspectionCursor

    def dispatch(self, request, *args, **kwargs):
        self.started = time.perf_counter()
        return super().dispatch(request, *args, **kwargs)

    def get_permissions(self):
        return [CanPostFrames()] if self.request.method == "POST" else [CanReadInspections()]

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
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Send a frame, get its verdict",
        request={"multipart/form-data": InspectionCreateSerializer},
        responses={
            201: InspectionSerializer,
            400: OpenApiResponse(description="Bad image or fields; nothing stored."),
            401: OpenApiResponse(description="Missing, wrong or revoked token."),
            403: OpenApiResponse(description="Token of another station, or inactive station."),
            409: OpenApiResponse(
                description="No deployment, or an edge result of another version."
            ),
            413: OpenApiResponse(description="Image over the size limit."),
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
        upload = data["image"]
        if upload.size > limit:
            raise PayloadTooLarge(f"The image is {upload.size:,} bytes; the limit is {limit:,}.")
        edge = None
        if "label" in data:
            model, _, number = data["model_version"].partition(":")
            edge = EdgeResult(
                model=model,
                version=int(number),
                label=data["label"],
                confidence=data["confidence"],
                top_k=tuple(data.get("top_k", ())),
            )
        try:
            inspection = inspection_create(
                station=station,
                image=upload.read(),
                product=data.get("product"),
                serial=data["serial"],
                lot=data["lot"],
                captured_at=data.get("captured_at"),
                edge=edge,
                started=self.started,
            )
        except FrameRefused as refused:
            return Response({"detail": refused.message}, status=refused.status)
        except RuntimeLoadError as exc:
            logger.exception("Model could not be loaded for station %s", station.code)
            return Response(
                {"detail": f"The station's model could not be loaded on this server: {exc}"},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        body = inspection_representation(inspection, request)
        location = request.build_absolute_uri(
            reverse("api-inspection-detail", args=[inspection.pk])
        )
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})

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


class InspectionDetailView(generics.RetrieveAPIView):
    serializer_class = InspectionSerializer
    permission_classes = [CanReadInspections]

    def get_queryset(self):
        return inspection_queryset()

    @extend_schema(summary="One inspection")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class InspectionImageView(APIView):
    permission_classes = [CanReadInspections]

    @extend_schema(
        summary="The frame as the camera sent it",
        responses={(200, "image/*"): OpenApiTypes.BINARY},
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)],
    )
    def get(self, request, pk: int):
        inspection = get_object_or_404(inspection_queryset(), pk=pk)
        self.check_object_permissions(request, inspection)
        # Frames are small (MAX_FRAME_BYTES): one read beats streaming a sync
        # file iterator through the ASGI handler.
        with inspection.image.storage.open(inspection.image.name, "rb") as handle:
            data = handle.read()
        response = HttpResponse(data, content_type=inspection.image_content_type)
        response["Cache-Control"] = "private, max-age=86400, immutable"
        return response
