"""GET /api/v1/stations/{code}/state/: where a station stands now, for pipelines and MES."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inspection.api.permissions import station_of
from inspection.station_state import station_state
from masterdata.api.schema import ErrorSerializer
from models_registry.models import Deployment


class CanReadStationState(BasePermission):
    message = "Use this station's device token, or a user allowed to view inspections."

    def has_permission(self, request, view) -> bool:
        station = station_of(request)
        if station is not None:
            return station.code == view.kwargs["code"]
        return request.user.has_perm("inspection.view_inspection")


class StationServingSerializer(serializers.Serializer):
    product = serializers.CharField(
        allow_null=True, help_text="SKU of the product slot; null serves every product."
    )
    model = serializers.CharField()
    version = serializers.IntegerField()
    deployment = serializers.IntegerField(help_text="Deployment id.")
    activated_at = serializers.DateTimeField()


class LastInspectionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    verdict = serializers.CharField()
    label = serializers.CharField()
    defect_type = serializers.CharField(allow_null=True)
    captured_at = serializers.DateTimeField()
    received_at = serializers.DateTimeField()


class LastHourSerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    frames = serializers.IntegerField(help_text="Frames received since then.")
    defects = serializers.IntegerField(help_text="Of them, finally judged defective.")
    defect_rate = serializers.FloatField(allow_null=True, help_text="null without frames.")


class StationStateSerializer(serializers.Serializer):
    station = serializers.CharField()
    line = serializers.CharField()
    plant = serializers.CharField()
    active = serializers.BooleanField(help_text="False: the station's frames are refused.")
    active_version = StationServingSerializer(
        allow_null=True,
        help_text="What judges the station's frames (its slot for every product), or null.",
    )
    serving = StationServingSerializer(many=True, help_text="Every active slot, per product.")
    last_inspection = LastInspectionSerializer(allow_null=True)
    last_hour = LastHourSerializer()
    pending_reviews = serializers.IntegerField()
    at = serializers.DateTimeField(help_text="When these figures were read.")


def _serving(deployment: Deployment) -> dict:
    return {
        "product": deployment.product.sku if deployment.product_id else None,
        "model": deployment.version.model.name,
        "version": deployment.version.number,
        "deployment": deployment.pk,
        "activated_at": deployment.activated_at,
    }


class StationStateView(APIView):
    permission_classes = [CanReadStationState]

    @extend_schema(
        tags=["inspections"],
        operation_id="stations_state",
        summary="A station now: active version, last verdict, the last hour, pending reviews",
        responses={
            200: StationStateSerializer,
            404: OpenApiResponse(ErrorSerializer, description="No such station."),
        },
    )
    def get(self, request: Request, code: str) -> Response:
        state = station_state(code=code)
        if state is None:
            raise NotFound(f"There is no station with code '{code}'.")
        station = state.station
        serving = [_serving(deployment) for deployment in state.deployments]
        body = {
            "station": station.code,
            "line": station.line.code,
            "plant": station.line.plant.code,
            "active": station.active,
            "active_version": next((s for s in serving if s["product"] is None), None),
            "serving": serving,
            "last_inspection": state.last,
            "last_hour": {
                "since": state.since,
                "frames": state.frames,
                "defects": state.defects,
                "defect_rate": state.defect_rate,
            },
            "pending_reviews": state.pending,
            "at": state.at,
        }
        return Response(StationStateSerializer(body).data)
