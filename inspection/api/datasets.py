"""``POST /api/v1/datasets/from-inspections/``: a dataset from verified inspections (a job).

The view checks the request's shape and calls ``inspection.to_dataset``'s start service;
refusals (no matching frame, a bad dataset name) are 400s before any job starts.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.job_api import JobSerializer
from inspection.to_dataset import FrameFilter, dataset_from_inspections_start
from masterdata.models import Line, Product, Station
from models_registry.api.permissions import RegistryPermission
from models_registry.api.schema import UserTokenOnlySchema
from models_registry.api.views import BAD_REQUEST, ERROR_RESPONSES


class FromInspectionsSerializer(serializers.Serializer):
    dataset = serializers.CharField(max_length=50, help_text="An existing dataset, or a new name.")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    station = serializers.SlugRelatedField(
        slug_field="code", queryset=Station.objects.all(), required=False
    )
    line = serializers.SlugRelatedField(
        slug_field="code", queryset=Line.objects.all(), required=False
    )
    product = serializers.SlugRelatedField(
        slug_field="sku", queryset=Product.objects.all(), required=False
    )
    disagreed_only = serializers.BooleanField(
        required=False, default=False, help_text="Only frames the inspector judged otherwise."
    )

    def get_fields(self) -> dict:
        # "from" and "to" are the API's names; "from" cannot be a Python attribute.
        fields = super().get_fields()
        fields["from"] = serializers.DateField(required=False, help_text="Plant date, inclusive.")
        fields["to"] = serializers.DateField(required=False, help_text="Plant date, inclusive.")
        return fields

    def frame_filter(self) -> FrameFilter:
        data = self.validated_data
        return FrameFilter.of(
            station=data.get("station"),
            line=data.get("line"),
            product=data.get("product"),
            date_from=data.get("from"),
            date_to=data.get("to"),
            disagreed_only=data["disagreed_only"],
        )


class DatasetFromInspectionsView(APIView):
    """Add the verified frames that match to a new or existing dataset, then snapshot it."""

    schema = UserTokenOnlySchema()
    permission_classes = [RegistryPermission]
    parser_classes = [JSONParser]
    required_permissions = {"POST": "models_registry.add_datasetimage"}

    @extend_schema(
        tags=["datasets"],
        request=FromInspectionsSerializer,
        responses={202: JobSerializer, **BAD_REQUEST, **ERROR_RESPONSES},
    )
    def post(self, request: Request) -> Response:
        given = FromInspectionsSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        job = dataset_from_inspections_start(
            dataset=given.validated_data["dataset"],
            description=given.validated_data["description"],
            frames=given.frame_filter(),
            requested_by=request.user,
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
