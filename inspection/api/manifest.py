"""Edge mode: what a device needs to run its station's model itself."""

from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.preprocessing import Preprocessing
from inspection.api.permissions import station_of
from inspection.selectors import serving_for
from masterdata.models import Product, Station
from models_registry.models import Deployment
from models_registry.selectors import deployment_queryset

PRODUCT_PARAMETER = OpenApiParameter(
    "product", str, description="SKU, where the station has a deployment per product."
)


class CanReadStationModel(BasePermission):
    message = "Use this station's device token, or a user allowed to view deployments."

    def has_permission(self, request, view) -> bool:
        station = station_of(request)
        if station is not None:
            return station.code == view.kwargs["code"]
        return request.user.has_perm("models_registry.view_deployment")


def _deployment_for(request: Request, code: str) -> Deployment:
    station = get_object_or_404(Station.objects.select_related("line"), code=code)
    product = None
    sku = request.query_params.get("product")
    if sku:
        product = Product.objects.filter(sku=sku).first()
        if product is None:
            raise exceptions.ValidationError({"product": f"Unknown product '{sku}'."})
    serving = serving_for(station=station, product=product)
    if serving is None:
        raise exceptions.NotFound(f"No model is deployed to station {code}.")
    return deployment_queryset().get(pk=serving.deployment.pk)


def _artifact(
    request: Request, field: FieldFile, sha256: str, code: str, kind: str, product: str | None
) -> dict | None:
    if not field:
        return None
    url = reverse("api-station-model-artifact", args=[code, kind])
    if product:
        url += f"?product={product}"
    return {"url": request.build_absolute_uri(url), "sha256": sha256, "size": field.size}


class StationModelView(APIView):
    permission_classes = [CanReadStationModel]

    @extend_schema(
        summary="The station's active model, for devices that run it themselves",
        parameters=[PRODUCT_PARAMETER],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request, code: str):
        deployment = _deployment_for(request, code)
        version = deployment.version
        sku = request.query_params.get("product")
        return Response(
            {
                "station": deployment.station.code,
                "product": deployment.product.sku if deployment.product_id else None,
                "model": version.model.name,
                "version": version.number,
                "model_version": f"{version.model.name}:{version.number}",
                "sha256": version.sha256,
                "labels": [
                    {
                        "index": m.index,
                        "label": m.label,
                        "defect_type": m.defect_type.code if m.defect_type_id else None,
                        "no_defect": m.no_defect,
                    }
                    for m in version.mappings.all()
                ],
                "preprocessing": Preprocessing.for_version(version).as_dict(),
                "outputs_probabilities": version.outputs_probabilities,
                "thresholds": {
                    "confidence_threshold": deployment.confidence_threshold,
                    "defect_thresholds": {
                        t.defect_type.code: t.threshold for t in deployment.defect_thresholds.all()
                    },
                    "always_review": sorted(d.code for d in deployment.always_review.all()),
                    "pass_review_rate": deployment.pass_review_rate,
                    "edge_recheck_rate": deployment.edge_recheck_rate,
                },
                "serving_runtime": version.serving_runtime,
                "artifacts": {
                    "tflite": _artifact(
                        request, version.tflite_artifact, version.tflite_sha256, code, "tflite", sku
                    ),
                    "savedmodel": _artifact(
                        request,
                        version.serving_savedmodel,
                        version.serving_savedmodel_sha256,
                        code,
                        "savedmodel",
                        sku,
                    ),
                },
                "activated_at": deployment.activated_at,
            }
        )


class StationModelArtifactView(APIView):
    permission_classes = [CanReadStationModel]

    @extend_schema(
        summary="Download the station's model: TFLite, or the SavedModel as a zip",
        operation_id="v1_stations_model_download",
        parameters=[PRODUCT_PARAMETER],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
    )
    def get(self, request, code: str, kind: str):
        version = _deployment_for(request, code).version
        field = {"tflite": version.tflite_artifact, "savedmodel": version.serving_savedmodel}[kind]
        if not field:
            raise Http404(f"{version} has no {kind} artifact.")
        filename = f"{version.model.name}-v{version.number}." + (
            "tflite" if kind == "tflite" else "zip"
        )
        return FileResponse(
            field.storage.open(field.name, "rb"),
            as_attachment=True,
            filename=filename,
            content_type="application/octet-stream",
        )
