"""``/api/v1/evaluations/``: evaluate versions on a dataset snapshot, read the figures and rows.

A view checks the request's shape, calls one service or selector and returns;
the rules (ready versions, non-empty split, mappable labels) are the service's.
"""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse

from common.job_api import JobSerializer
from models_registry.api.serializers import ErrorSerializer, VersionRefSerializer
from models_registry.api.views import ERROR_RESPONSES, RegistryView
from models_registry.datasets.models import DatasetSnapshot
from models_registry.evaluation import selectors
from models_registry.evaluation.models import Evaluation, EvaluationSplit
from models_registry.evaluation.services import (
    DEFAULT_TARGET_ESCAPE_RATE,
    evaluation_start,
    version_enable_fast_path,
)
from models_registry.models import Deployment, ModelVersion

TAG = "evaluations"
NOT_FOUND = {404: OpenApiResponse(ErrorSerializer, description="No such evaluation.")}


class EvaluatedVersionSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=50, help_text="Model name.")
    version = serializers.IntegerField(min_value=1, help_text="Version number of the model.")


def _version(name: str, number: int, field: str) -> ModelVersion:
    version = (
        ModelVersion.objects.select_related("model").filter(model__name=name, number=number).first()
    )
    if version is None:
        raise serializers.ValidationError({field: f"There is no version {number} of '{name}'."})
    return version


class EvaluationCreateSerializer(EvaluatedVersionSerializer):
    dataset = serializers.CharField(max_length=50, help_text="Dataset name.")
    snapshot = serializers.IntegerField(min_value=1, help_text="Snapshot number.")
    split = serializers.ChoiceField(choices=EvaluationSplit.choices, default=EvaluationSplit.TEST)
    challenger = EvaluatedVersionSerializer(required=False, allow_null=True, default=None)
    deployment = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Deployment whose thresholds the line simulation uses (default: the "
        "version's active deployment, else a new deployment's defaults).",
    )
    target_escape_rate = serializers.FloatField(
        min_value=0.0, max_value=1.0, default=DEFAULT_TARGET_ESCAPE_RATE
    )
    check_fast_path = serializers.BooleanField(
        default=False,
        help_text="Also run every image through reduced-scale JPEG decoding and record how "
        "often it gives the exact path's label (evidence for enabling it).",
    )

    def validate(self, attrs: dict) -> dict:
        snapshot = (
            DatasetSnapshot.objects.select_related("dataset")
            .filter(dataset__name=attrs["dataset"], number=attrs["snapshot"])
            .first()
        )
        if snapshot is None:
            raise serializers.ValidationError(
                {"snapshot": f"Dataset '{attrs['dataset']}' has no snapshot {attrs['snapshot']}."}
            )
        attrs["snapshot"] = snapshot
        attrs["version"] = _version(attrs.pop("model"), attrs["version"], "version")
        if attrs["challenger"]:
            other = attrs["challenger"]
            attrs["challenger"] = _version(other["model"], other["version"], "challenger")
        if attrs["deployment"] is not None:
            deployment = Deployment.objects.filter(pk=attrs["deployment"]).first()
            if deployment is None:
                raise serializers.ValidationError({"deployment": "No such deployment."})
            attrs["deployment"] = deployment
        return attrs


class EvaluationSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    results_url = serializers.SerializerMethodField()
    state = serializers.CharField(read_only=True, help_text="The job's: queued, running, done...")
    job = JobSerializer(read_only=True, allow_null=True)
    dataset = serializers.CharField(source="snapshot.dataset.name")
    snapshot = serializers.IntegerField(source="snapshot.number")
    version = VersionRefSerializer()
    challenger = VersionRefSerializer(allow_null=True)
    metrics = serializers.JSONField(
        help_text="accuracy, macro_f1, per_label, confusion, ece, calibration, latency_ms."
    )
    challenger_metrics = serializers.JSONField(help_text="The same figures for the challenger.")
    paired_test = serializers.JSONField(help_text="McNemar's test between the two versions.")
    line = serializers.JSONField(help_text="What the line would have seen; threshold suggestions.")
    fast_path = serializers.JSONField(help_text="Agreement of fast and exact JPEG decoding.")

    class Meta:
        model = Evaluation
        fields = [
            "id",
            "url",
            "state",
            "job",
            "dataset",
            "snapshot",
            "split",
            "version",
            "challenger",
            "label_space",
            "classes",
            "image_count",
            "metrics",
            "challenger_metrics",
            "paired_test",
            "line",
            "fast_path",
            "created_at",
            "results_url",
        ]
        read_only_fields = fields

    def get_url(self, obj: Evaluation) -> str:
        return reverse("registry:evaluation-detail", args=[obj.pk], request=self.context["request"])

    def get_results_url(self, obj: Evaluation) -> str:
        return reverse(
            "registry:evaluation-results", args=[obj.pk], request=self.context["request"]
        )


class EvaluationChallengerRowSerializer(serializers.Serializer):
    predicted = serializers.CharField()
    predicted_label = serializers.CharField()
    confidence = serializers.FloatField()
    correct = serializers.BooleanField()


class EvaluationResultSerializer(serializers.Serializer):
    sha256 = serializers.CharField(source="item.image.sha256")
    file = serializers.CharField(source="item.image.original_name")
    label = serializers.CharField(source="item.label.name", help_text="The dataset's label.")
    truth = serializers.CharField(help_text="That label's class in the evaluation.")
    predicted = serializers.CharField(help_text="The predicted class.")
    predicted_label = serializers.CharField(help_text="The version's own label.")
    confidence = serializers.FloatField()
    correct = serializers.BooleanField()
    latency_ms = serializers.FloatField()
    fast_path_predicted = serializers.CharField()
    challenger = EvaluationChallengerRowSerializer(allow_null=True, source="challenger_result")


class EvaluationResultPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = EvaluationResultSerializer(many=True)


class EvaluationResultQuerySerializer(serializers.Serializer):
    wrong = serializers.BooleanField(
        required=False, default=False, help_text="Only images the version got wrong."
    )
    disagree = serializers.BooleanField(
        required=False, default=False, help_text="Only images the two versions label differently."
    )


class EvaluationResultPages(PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


def evaluation_or_404(pk: int) -> Evaluation:
    evaluation = selectors.evaluation_list().filter(pk=pk).first()
    if evaluation is None:
        raise NotFound(f"There is no evaluation {pk}.")
    return evaluation


class EvaluationListView(RegistryView):
    """POST starts an evaluation as a job; poll its URL until ``state`` is done or failed."""

    required_permissions = {"POST": "models_registry.add_evaluation"}

    @extend_schema(
        tags=[TAG],
        operation_id="evaluations_create",
        summary="Evaluate a version (and optionally a challenger) on a snapshot's split",
        description=(
            "Refused with 400 before any job starts when a version is not ready, the split "
            "has no images or the labels cannot be mapped onto the dataset's."
        ),
        request=EvaluationCreateSerializer,
        responses={
            202: EvaluationSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Nothing was started."),
            **ERROR_RESPONSES,
        },
    )
    def post(self, request: Request) -> Response:
        serializer = EvaluationCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        evaluation = evaluation_start(
            version=data["version"],
            snapshot=data["snapshot"],
            split=data["split"],
            challenger=data["challenger"],
            deployment=data["deployment"],
            target_escape_rate=data["target_escape_rate"],
            check_fast_path=data["check_fast_path"],
            requested_by=request.user,
        )
        body = EvaluationSerializer(
            evaluation_or_404(evaluation.pk), context={"request": request}
        ).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


class EvaluationDetailView(RegistryView):
    """An evaluation's state and, once done, its figures."""

    required_permissions = {"GET": "models_registry.view_evaluation"}

    @extend_schema(
        tags=[TAG],
        operation_id="evaluations_retrieve",
        summary="One evaluation: state, metrics, challenger metrics, paired test",
        responses={200: EvaluationSerializer, **NOT_FOUND, **ERROR_RESPONSES},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(
            EvaluationSerializer(evaluation_or_404(pk), context={"request": request}).data
        )


class EvaluationResultsView(RegistryView):
    """The per-image rows of an evaluation, a page at a time."""

    required_permissions = {"GET": "models_registry.view_evaluation"}

    @extend_schema(
        tags=[TAG],
        operation_id="evaluations_results",
        summary="Per-image results: sha256, label, predicted, confidence (paged)",
        parameters=[
            EvaluationResultQuerySerializer,
            OpenApiParameter("page", int, description="Page number, from 1."),
            OpenApiParameter("page_size", int, description="Rows per page, at most 1000."),
        ],
        responses={200: EvaluationResultPageSerializer, **NOT_FOUND, **ERROR_RESPONSES},
    )
    def get(self, request: Request, pk: int) -> Response:
        evaluation = evaluation_or_404(pk)
        query = EvaluationResultQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        rows = selectors.result_list(evaluation=evaluation, **query.validated_data)
        pages = EvaluationResultPages()
        page = pages.paginate_queryset(rows, request, view=self)
        selectors.attach_challenger_results(evaluation=evaluation, rows=page)
        return pages.get_paginated_response(EvaluationResultSerializer(page, many=True).data)


class FastPathVersionSerializer(VersionRefSerializer):
    jpeg_draft = serializers.BooleanField(read_only=True)


class EvaluationFastPathView(RegistryView):
    """Switch the evaluated version to reduced-scale JPEG decoding, on this evaluation's
    evidence (at least 99.9 % label agreement with the exact path)."""

    required_permissions = {"POST": "models_registry.change_modelversion"}

    @extend_schema(
        tags=[TAG],
        operation_id="evaluations_enable_fast_path",
        summary="Enable fast JPEG decoding for the evaluated version, on this evidence",
        description=(
            "Refused unless the evaluation is done, ran with check_fast_path, and the fast "
            "path gave the exact path's label on at least 99.9 % of the images; refused "
            "while the version serves a station."
        ),
        request=None,
        responses={
            200: FastPathVersionSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Nothing was changed."),
            **NOT_FOUND,
            **ERROR_RESPONSES,
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        evaluation = evaluation_or_404(pk)
        version = version_enable_fast_path(version=evaluation.version, evaluation=evaluation)
        return Response(FastPathVersionSerializer(version).data)
