"""The registry API for model pipelines: create models, upload versions, map, deploy.

Each view checks the request's shape, calls one service or selector and
returns; services raise Django ValidationErrors that common.api turns into
``{"detail": ..., "errors": ...}`` with status 400.
"""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, UnsupportedMediaType
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from models_registry import selectors, services
from models_registry.api.permissions import RegistryPermission
from models_registry.api.schema import UserTokenOnlySchema
from models_registry.api.serializers import (
    DeploymentCreateSerializer,
    DeploymentOverviewSerializer,
    DeploymentQuerySerializer,
    DeploymentSerializer,
    ErrorSerializer,
    MappingUpdateSerializer,
    ModelCreateSerializer,
    ModelSerializer,
    SlotSerializer,
    VersionChangeSerializer,
    VersionSerializer,
    VersionUploadSerializer,
)
from models_registry.labels import parse_labels_text
from models_registry.models import MLModel, ModelVersion

TAG_MODELS = "model registry"
TAG_DEPLOYMENTS = "deployments"

ERROR_RESPONSES = {
    401: OpenApiResponse(ErrorSerializer, description="No or a wrong user API token."),
    403: OpenApiResponse(
        ErrorSerializer, description="Not a quality engineer (or a station device token)."
    ),
}
BAD_REQUEST = {400: OpenApiResponse(ErrorSerializer, description="Nothing was changed.")}
NOT_FOUND = {404: OpenApiResponse(ErrorSerializer, description="No such model or version.")}
LOCATION = OpenApiParameter(
    "Location",
    str,
    location=OpenApiParameter.HEADER,
    response=[201],
    description="URL of what was created.",
)


def model_or_404(name: str) -> MLModel:
    model = selectors.model_list().filter(name=name).first()
    if model is None:
        raise NotFound(f"There is no model named '{name}'. Create it with POST /api/v1/models/.")
    return model


def version_or_404(name: str, number: int) -> ModelVersion:
    try:
        return selectors.version_by_number(model_name=name, number=number)
    except ModelVersion.DoesNotExist:
        model_or_404(name)
        raise NotFound(f"Model '{name}' has no version {number}.") from None


class RegistryView(APIView):
    """User API tokens (or an admin session) with the registry's Django permissions."""

    schema = UserTokenOnlySchema()
    permission_classes = [RegistryPermission]
    parser_classes = [JSONParser]
    required_permissions: dict[str, str] = {}


class ModelListView(RegistryView):
    """The models of the registry, each with its version count and newest version."""

    required_permissions = {
        "GET": "models_registry.view_mlmodel",
        "POST": "models_registry.add_mlmodel",
    }

    @extend_schema(
        tags=[TAG_MODELS],
        operation_id="models_list",
        summary="List models",
        responses={200: ModelSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request: Request) -> Response:
        models = selectors.model_list()
        return Response(ModelSerializer(models, many=True, context={"request": request}).data)

    @extend_schema(
        tags=[TAG_MODELS],
        operation_id="models_create",
        summary="Create a model",
        description="A name is refused when another model has it.",
        request=ModelCreateSerializer,
        responses={201: ModelSerializer, **BAD_REQUEST, **ERROR_RESPONSES},
        parameters=[LOCATION],
    )
    def post(self, request: Request) -> Response:
        serializer = ModelCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model = services.model_create(**serializer.validated_data)
        data = ModelSerializer(model_or_404(model.name), context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED, headers={"Location": data["url"]})


class ModelDetailView(RegistryView):
    """One model by name."""

    required_permissions = {"GET": "models_registry.view_mlmodel"}

    @extend_schema(
        tags=[TAG_MODELS],
        operation_id="models_retrieve",
        summary="One model",
        responses={200: ModelSerializer, **NOT_FOUND, **ERROR_RESPONSES},
    )
    def get(self, request: Request, name: str) -> Response:
        return Response(ModelSerializer(model_or_404(name), context={"request": request}).data)


class VersionListView(RegistryView):
    """A model's versions; POST uploads the next one."""

    required_permissions = {
        "GET": "models_registry.view_modelversion",
        "POST": "models_registry.add_modelversion",
    }
    parser_classes = [MultiPartParser, FormParser]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, UnsupportedMediaType):
            exc = UnsupportedMediaType(
                self.request.content_type,
                detail="Send the upload as multipart/form-data with the file in 'artifact'.",
            )
        return super().handle_exception(exc)

    @extend_schema(
        tags=[TAG_MODELS],
        operation_id="versions_list",
        summary="List a model's versions, newest first",
        responses={200: VersionSerializer(many=True), **NOT_FOUND, **ERROR_RESPONSES},
    )
    def get(self, request: Request, name: str) -> Response:
        versions = selectors.version_list(model=model_or_404(name))
        return Response(VersionSerializer(versions, many=True, context={"request": request}).data)

    @extend_schema(
        tags=[TAG_MODELS],
        operation_id="versions_upload",
        summary="Upload a version",
        description=(
            "Stores the artifact as the model's next version (status `uploaded`) and queues "
            "its validation. Poll the version's URL (also in the Location header) until "
            "`status` is `ready` or `invalid`."
        ),
        request={"multipart/form-data": VersionUploadSerializer},
        responses={201: VersionSerializer, **BAD_REQUEST, **NOT_FOUND, **ERROR_RESPONSES},
        parameters=[LOCATION],
    )
    def post(self, request: Request, name: str) -> Response:
        model = model_or_404(name)
        serializer = VersionUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        labels = data.get("labels")
        if isinstance(labels, str):
            labels = parse_labels_text(labels) if labels.strip() else None
        version = services.version_upload(
            model=model,
            artifact=data["artifact"],
            labels=labels,
            notes=data["notes"],
            uploaded_by=request.user,
            resize_interpolation=data["resize_interpolation"],
            jpeg_draft=data["jpeg_draft"],
            resize_mode=data["resize_mode"],
            value_scale=data["value_scale"],
            color_mode=data["color_mode"],
        )
        body = VersionSerializer(
            selectors.version_by_number(model_name=model.name, number=version.number),
            context={"request": request},
        ).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})


class VersionDetailView(RegistryView):
    """Everything about a version; poll it after an upload until it is ready or invalid."""

    required_permissions = {
        "GET": "models_registry.view_modelversion",
        "PATCH": "models_registry.change_modelversion",
    }

    @extend_schema(
        tags=[TAG_MODELS],
        operation_id="versions_retrieve",
        summary="One version: status, signature, labels, mapping, preprocessing, serving",
        responses={200: VersionSerializer, **NOT_FOUND, **ERROR_RESPONSES},
    )
    def get(self, request: Request, name: str, number: int) -> Response:
        version = version_or_404(name, number)
        return Response(VersionSerializer(version, context={"request": request}).data)

    @extend_schema(
        tags=[TAG_MODELS],
        operation_id="versions_partial_update",
        summary="Change a version's notes or preprocessing while it serves nowhere",
        description=(
            "Fields left out stay as they are. Refused with 409 while the version is deployed "
            "(deploy another version there first). A new `value_scale` validates the version "
            "again: poll it until `status` is `ready`."
        ),
        request=VersionChangeSerializer,
        responses={
            200: VersionSerializer,
            409: OpenApiResponse(ErrorSerializer, description="The version is deployed."),
            **BAD_REQUEST,
            **NOT_FOUND,
            **ERROR_RESPONSES,
        },
    )
    def patch(self, request: Request, name: str, number: int) -> Response:
        version = version_or_404(name, number)
        serializer = VersionChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            services.version_change(version=version, **serializer.validated_data)
        except services.VersionServing as refused:
            return Response({"detail": refused.messages[0]}, status=status.HTTP_409_CONFLICT)
        version = selectors.version_by_number(model_name=name, number=number)
        return Response(VersionSerializer(version, context={"request": request}).data)


class VersionMappingView(RegistryView):
    """What each output label of a version means."""

    required_permissions = {"PUT": "models_registry.change_labelmapping"}

    @extend_schema(
        tags=[TAG_MODELS],
        operation_id="versions_mapping_update",
        summary="Map labels to defect types",
        description=(
            "Each label named maps to a defect type code, or to null for 'no defect'. "
            "Unknown labels or codes, and any change to a version that is deployed, are "
            "refused and nothing changes."
        ),
        request=MappingUpdateSerializer,
        responses={200: VersionSerializer, **BAD_REQUEST, **NOT_FOUND, **ERROR_RESPONSES},
    )
    def put(self, request: Request, name: str, number: int) -> Response:
        version = version_or_404(name, number)
        serializer = MappingUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.label_mappings_update(
            version=version, mapping=serializer.validated_data["mapping"]
        )
        version = selectors.version_by_number(model_name=name, number=number)
        return Response(VersionSerializer(version, context={"request": request}).data)


class DeploymentListView(RegistryView):
    """Deployments: what serves each station now and the history; POST activates one."""

    required_permissions = {
        "GET": "models_registry.view_deployment",
        "POST": "models_registry.add_deployment",
    }

    @extend_schema(
        tags=[TAG_DEPLOYMENTS],
        operation_id="deployments_overview",
        summary="What serves where now, and the history of switches",
        parameters=[DeploymentQuerySerializer],
        responses={200: DeploymentOverviewSerializer, **BAD_REQUEST, **ERROR_RESPONSES},
    )
    def get(self, request: Request) -> Response:
        query = DeploymentQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        station, product = query.validated_data["station"], query.validated_data["product"]
        active = selectors.deployment_list(station=station, product=product, active=True)
        history = selectors.deployment_history(station=station, product=product)
        overview = {
            "active": active,
            "history": history[: query.validated_data["history_limit"]],
        }
        return Response(DeploymentOverviewSerializer(overview, context={"request": request}).data)

    @extend_schema(
        tags=[TAG_DEPLOYMENTS],
        operation_id="deployments_create",
        summary="Deploy a version to a station (activates it)",
        description=(
            "The version must be `ready` with every label mapped. The station's next frame "
            "is judged by it, in every worker; the replaced deployment is kept for rollback."
        ),
        request=DeploymentCreateSerializer,
        responses={201: DeploymentSerializer, **BAD_REQUEST, **ERROR_RESPONSES},
        parameters=[LOCATION],
    )
    def post(self, request: Request) -> Response:
        serializer = DeploymentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        deployment = services.deployment_activate(
            station=data["station"],
            product=data["product"],
            version=data["version"],
            confidence_threshold=data["confidence_threshold"],
            defect_thresholds=data["defect_thresholds"],
            always_review=data["always_review"],
            pass_review_rate=data["pass_review_rate"],
            edge_recheck_rate=data["edge_recheck_rate"],
            low_margin_review=data["low_margin_review"],
            low_margin_daily_cap=data["low_margin_daily_cap"],
            by=request.user,
        )
        body = DeploymentSerializer(
            selectors.deployment_list().get(pk=deployment.pk), context={"request": request}
        ).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})


class DeploymentDetailView(RegistryView):
    """One deployment (a configuration: version and thresholds for a station slot)."""

    required_permissions = {"GET": "models_registry.view_deployment"}

    @extend_schema(
        tags=[TAG_DEPLOYMENTS],
        operation_id="deployments_retrieve",
        summary="One deployment",
        responses={200: DeploymentSerializer, **NOT_FOUND, **ERROR_RESPONSES},
    )
    def get(self, request: Request, pk: int) -> Response:
        deployment = selectors.deployment_list().filter(pk=pk).first()
        if deployment is None:
            raise NotFound(f"There is no deployment {pk}.")
        return Response(DeploymentSerializer(deployment, context={"request": request}).data)


class DeploymentRollbackView(RegistryView):
    """Re-activates the deployment that served before the current one."""

    required_permissions = {"POST": "models_registry.add_deployment"}

    @extend_schema(
        tags=[TAG_DEPLOYMENTS],
        operation_id="deployments_rollback",
        summary="Roll a station back to the deployment before the current one",
        description="Repeated rollbacks walk back through activations (v3 → v2 → v1).",
        request=SlotSerializer,
        responses={200: DeploymentSerializer, **BAD_REQUEST, **ERROR_RESPONSES},
    )
    def post(self, request: Request) -> Response:
        serializer = SlotSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        deployment = services.deployment_rollback(
            station=serializer.validated_data["station"],
            product=serializer.validated_data["product"],
            by=request.user,
        )
        body = DeploymentSerializer(
            selectors.deployment_list().get(pk=deployment.pk), context={"request": request}
        ).data
        return Response(body)
