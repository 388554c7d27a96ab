"""``/api/v1/trainings/``: train a version from a dataset snapshot, follow it, cancel it.

A view checks the request's shape, calls one service and returns; the rules
(settings in range, a snapshot a model can learn from) are the service's.
"""

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse

from common.job_api import JobSerializer
from common.models import Job, JobState
from models_registry.api.serializers import ErrorSerializer, station_by_code
from models_registry.api.views import ERROR_RESPONSES, RegistryView
from models_registry.datasets.models import DatasetSnapshot
from models_registry.models import ModelVersion
from models_registry.training.compare import (
    DEFAULT_FRAMES,
    MAX_FRAMES,
    training_compare_start,
    training_comparisons,
)
from models_registry.training.models import Recipe, TrainingRun
from models_registry.training.services import training_cancel, training_start

TAG = "trainings"
NOT_FOUND = {404: OpenApiResponse(ErrorSerializer, description="No such training.")}


class TrainedVersionSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=50)
    version = serializers.IntegerField(min_value=1)


class TrainingCreateSerializer(serializers.Serializer):
    dataset = serializers.CharField(max_length=50, help_text="Dataset name.")
    snapshot = serializers.IntegerField(min_value=1, help_text="Snapshot number.")
    model = serializers.CharField(
        max_length=100, help_text="The model the new version joins; created if new."
    )
    recipe = serializers.ChoiceField(choices=Recipe.choices, default=Recipe.DEFAULT)
    settings = serializers.DictField(
        required=False,
        default=dict,
        help_text="Overrides of the settings chosen from the data (epochs, input_size, "
        "color_mode, learning_rate, flip, class_weights, seed, ...).",
    )
    base = TrainedVersionSerializer(
        required=False,
        allow_null=True,
        default=None,
        help_text="For the 'finetune' recipe: a ready version uploaded as a .keras file whose "
        "convolutional part is reused with a new head.",
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
        if attrs["base"]:
            name, number = attrs["base"]["model"], attrs["base"]["version"]
            base = (
                ModelVersion.objects.select_related("model")
                .filter(model__name=name, number=number)
                .first()
            )
            if base is None:
                raise serializers.ValidationError(
                    {"base": f"There is no version {number} of '{name}'."}
                )
            attrs["base"] = base
        return attrs


class TrainingSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    state = serializers.CharField(read_only=True, help_text="queued, running, done, failed...")
    progress = serializers.FloatField(source="job.progress", read_only=True, default=0.0)
    message = serializers.CharField(source="job.message", read_only=True, default="")
    error = serializers.CharField(source="job.error", read_only=True, default="")
    job = JobSerializer(read_only=True, allow_null=True)
    dataset = serializers.CharField(source="snapshot.dataset.name")
    snapshot = serializers.IntegerField(source="snapshot.number")
    model = serializers.CharField(source="model_name")
    history = serializers.JSONField(help_text="One entry per epoch: loss, validation metrics.")
    settings_chosen = serializers.JSONField(help_text="Every setting used, and why.")
    settings_requested = serializers.JSONField()
    version = serializers.SerializerMethodField()
    parent = serializers.SerializerMethodField()
    evaluation = serializers.SerializerMethodField()
    suggested_thresholds = serializers.JSONField(
        help_text="Once done: per defect type code, the reject threshold that keeps its escapes "
        "on the validation split within target_escape_rate ('threshold'), with 'escape_rate', "
        "'review_load' and 'false_reject_rate' then; apply them when deploying."
    )

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "url",
            "state",
            "progress",
            "message",
            "error",
            "job",
            "dataset",
            "snapshot",
            "model",
            "recipe",
            "settings_requested",
            "settings_chosen",
            "history",
            "training_seconds",
            "peak_rss_mb",
            "version",
            "parent",
            "evaluation",
            "suggested_thresholds",
            "created_at",
        ]
        read_only_fields = fields

    def get_url(self, obj: TrainingRun) -> str:
        return reverse("registry:training-detail", args=[obj.pk], request=self.context["request"])

    @extend_schema_field(TrainedVersionSerializer(allow_null=True))
    def get_version(self, obj: TrainingRun) -> dict | None:
        """The registered version, once the run is done (never a half-registered one)."""
        if obj.state != JobState.DONE or obj.version is None:
            return None
        return {"model": obj.version.model.name, "version": obj.version.number}

    @extend_schema_field(TrainedVersionSerializer(allow_null=True))
    def get_parent(self, obj: TrainingRun) -> dict | None:
        """The base version a fine-tuning started from."""
        if obj.parent is None:
            return None
        return {"model": obj.parent.model.name, "version": obj.parent.number}

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_evaluation(self, obj: TrainingRun) -> str | None:
        if obj.evaluation_id is None:
            return None
        return reverse(
            "registry:evaluation-detail", args=[obj.evaluation_id], request=self.context["request"]
        )


def training_or_404(pk: int) -> TrainingRun:
    run = (
        TrainingRun.objects.select_related(
            "job__requested_by",
            "job__target_type",
            "snapshot__dataset",
            "version__model",
            "parent__model",
        )
        .filter(pk=pk)
        .first()
    )
    if run is None:
        raise NotFound(f"There is no training {pk}.")
    return run


class TrainingListView(RegistryView):
    """POST starts a training as a job; poll its URL until ``state`` is done or failed."""

    required_permissions = {"POST": "models_registry.add_trainingrun"}

    @extend_schema(
        tags=[TAG],
        operation_id="trainings_create",
        summary="Train a new version of a model from a dataset snapshot",
        description=(
            "Refused with 400 before any job starts when a setting is unknown or out of range, "
            "the snapshot has one label, an empty train or validation split, or a label with "
            "too few images."
        ),
        request=TrainingCreateSerializer,
        responses={
            202: TrainingSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Nothing was started."),
            **ERROR_RESPONSES,
        },
    )
    def post(self, request: Request) -> Response:
        serializer = TrainingCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        run = training_start(
            snapshot=data["snapshot"],
            model_name=data["model"],
            recipe=data["recipe"],
            settings=data["settings"],
            base=data["base"],
            requested_by=request.user,
        )
        body = TrainingSerializer(training_or_404(run.pk), context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


class TrainingDetailView(RegistryView):
    """A training's state, progress, per-epoch history and, once done, its version."""

    required_permissions = {"GET": "models_registry.view_trainingrun"}

    @extend_schema(
        tags=[TAG],
        operation_id="trainings_retrieve",
        summary="One training: state, progress, history, version when done",
        responses={200: TrainingSerializer, **NOT_FOUND, **ERROR_RESPONSES},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(TrainingSerializer(training_or_404(pk), context={"request": request}).data)


class TrainingCancelView(RegistryView):
    """Stop a queued or running training; nothing it made stays registered."""

    required_permissions = {"POST": "models_registry.change_trainingrun"}

    @extend_schema(
        tags=[TAG],
        operation_id="trainings_cancel",
        summary="Cancel a training",
        request=None,
        responses={
            200: TrainingSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Nothing to cancel."),
            **NOT_FOUND,
            **ERROR_RESPONSES,
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        training_cancel(run=training_or_404(pk))
        return Response(TrainingSerializer(training_or_404(pk), context={"request": request}).data)


class CompareCreateSerializer(serializers.Serializer):
    station = serializers.CharField(
        max_length=50, help_text="Station code: its deployed version is the champion."
    )
    frames = serializers.IntegerField(
        min_value=1,
        max_value=MAX_FRAMES,
        default=DEFAULT_FRAMES,
        help_text="How many of the station's latest verified frames to compare on.",
    )

    def validate_station(self, code: str):
        return station_by_code(code)


class TrainingCompareView(RegistryView):
    """Champion/challenger: the trained version against the station's deployed version, on
    the run's snapshot and on the station's latest verified frames; both as jobs."""

    required_permissions = {
        "GET": "models_registry.view_trainingrun",
        "POST": "models_registry.add_evaluation",
    }

    @extend_schema(
        tags=[TAG],
        operation_id="trainings_compare",
        summary="Compare a trained version with a station's deployed version",
        description=(
            "202 with the comparison job (poll `/api/v1/jobs/{id}/`; its `result` holds the "
            "production figures and the id of the snapshot evaluation). Refused with 400 "
            "when the run has no ready version or nothing else serves the station."
        ),
        request=CompareCreateSerializer,
        responses={
            202: JobSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Nothing was started."),
            **NOT_FOUND,
            **ERROR_RESPONSES,
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        run = training_or_404(pk)
        serializer = CompareCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = training_compare_start(
            run=run,
            station=serializer.validated_data["station"],
            frames=serializer.validated_data["frames"],
            requested_by=request.user,
        )
        job = Job.objects.select_related("target_type", "requested_by").get(pk=job.pk)
        url = reverse("job-detail", args=[job.pk], request=request)
        return Response(
            JobSerializer(job).data, status=status.HTTP_202_ACCEPTED, headers={"Location": url}
        )

    @extend_schema(
        tags=[TAG],
        operation_id="trainings_compare_list",
        summary="The run's comparisons, newest first, with their results",
        responses={200: JobSerializer(many=True), **NOT_FOUND, **ERROR_RESPONSES},
    )
    def get(self, request: Request, pk: int) -> Response:
        run = training_or_404(pk)
        jobs = training_comparisons(run).select_related("target_type", "requested_by")[:20]
        return Response(JobSerializer(jobs, many=True).data)
