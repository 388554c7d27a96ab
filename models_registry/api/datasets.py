"""The dataset API: create, import an archive (a job), split, snapshot, export a snapshot (a job).

Each view checks the request's shape, calls one service or selector and
returns; services raise Django ValidationErrors that common.api turns into 400s.
"""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.generics import get_object_or_404
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.job_api import JobSerializer
from common.models import Job, JobState
from models_registry.api.datasets_serializers import (
    DatasetCreateSerializer,
    DatasetSerializer,
    ImportUploadSerializer,
    SnapshotCreateSerializer,
    SnapshotSerializer,
    SplitSerializer,
    SplitSettingsSerializer,
)
from models_registry.api.permissions import RegistryPermission
from models_registry.api.schema import UserTokenOnlySchema
from models_registry.api.serializers import ErrorSerializer
from models_registry.api.views import BAD_REQUEST, ERROR_RESPONSES
from models_registry.datasets import export, selectors, services
from models_registry.datasets.kinds import DATASET_EXPORT
from models_registry.datasets.models import Dataset, DatasetSnapshot

TAG = "datasets"
NOT_FOUND = {
    **ERROR_RESPONSES,
    404: OpenApiResponse(ErrorSerializer, description="No such dataset or snapshot."),
}
REFUSED = {**ERROR_RESPONSES, **BAD_REQUEST}


def dataset_or_404(name: str) -> Dataset:
    dataset = Dataset.objects.filter(name=name).first()
    if dataset is None:
        raise NotFound(
            f"There is no dataset named '{name}'. Create it with POST /api/v1/datasets/."
        )
    return dataset


def dataset_body(dataset: Dataset) -> dict:
    counts = selectors.label_counts(dataset=dataset)
    labels = dataset.labels.select_related("defect_type").order_by("name")
    snapshots = dataset.snapshots.order_by("number").values_list("number", flat=True)
    facts = {
        "name": dataset.name,
        "description": dataset.description,
        "created_by": dataset.created_by.username if dataset.created_by else None,
        "created_at": dataset.created_at,
        "image_count": sum(counts.values()),
        "label_counts": counts,
        "split_counts": selectors.split_counts(dataset=dataset),
        "labels": [
            {"name": label.name, "meaning": label.meaning, "images": counts.get(label.name, 0)}
            for label in labels
        ],
        "last_import": selectors.last_import_job(dataset=dataset),
        "snapshots": list(snapshots),
    }
    return DatasetSerializer(facts).data


class DatasetView(APIView):
    schema = UserTokenOnlySchema()
    permission_classes = [RegistryPermission]
    parser_classes = [JSONParser]
    required_permissions: dict[str, str] = {}


class DatasetListView(DatasetView):
    required_permissions = {
        "GET": "models_registry.view_dataset",
        "POST": "models_registry.add_dataset",
    }

    @extend_schema(tags=[TAG], responses={200: DatasetSerializer(many=True), **ERROR_RESPONSES})
    def get(self, request: Request) -> Response:
        return Response([dataset_body(d) for d in Dataset.objects.order_by("name")])

    @extend_schema(
        tags=[TAG], request=DatasetCreateSerializer, responses={201: DatasetSerializer, **REFUSED}
    )
    def post(self, request: Request) -> Response:
        given = DatasetCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        dataset = services.dataset_create(created_by=request.user, **given.validated_data)
        return Response(dataset_body(dataset), status=status.HTTP_201_CREATED)


class DatasetDetailView(DatasetView):
    required_permissions = {"GET": "models_registry.view_dataset"}

    @extend_schema(tags=[TAG], responses={200: DatasetSerializer, **NOT_FOUND})
    def get(self, request: Request, name: str) -> Response:
        return Response(dataset_body(dataset_or_404(name)))


class DatasetImportView(DatasetView):
    """Upload an archive; its import runs as a job (poll GET /api/v1/jobs/{id}/)."""

    parser_classes = [MultiPartParser, FormParser]
    required_permissions = {"POST": "models_registry.add_datasetimage"}

    @extend_schema(
        tags=[TAG],
        request=ImportUploadSerializer,
        responses={202: JobSerializer, **BAD_REQUEST, **NOT_FOUND},
    )
    def post(self, request: Request, name: str) -> Response:
        dataset = dataset_or_404(name)
        given = ImportUploadSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        job = services.dataset_import_start(
            dataset=dataset, archive=given.validated_data["archive"], requested_by=request.user
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class DatasetSplitView(DatasetView):
    """Re-split the dataset's images (explicit, recorded)."""

    required_permissions = {"POST": "models_registry.change_dataset"}

    @extend_schema(
        tags=[TAG],
        request=SplitSettingsSerializer,
        responses={201: SplitSerializer, **REFUSED, **NOT_FOUND},
    )
    def post(self, request: Request, name: str) -> Response:
        dataset = dataset_or_404(name)
        given = SplitSettingsSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        split = services.dataset_split(
            dataset=dataset, created_by=request.user, **given.validated_data
        )
        return Response(SplitSerializer(split).data, status=status.HTTP_201_CREATED)


class SnapshotListView(DatasetView):
    required_permissions = {
        "GET": "models_registry.view_datasetsnapshot",
        "POST": "models_registry.add_datasetsnapshot",
    }

    @extend_schema(tags=[TAG], responses={200: SnapshotSerializer(many=True), **NOT_FOUND})
    def get(self, request: Request, name: str) -> Response:
        snapshots = dataset_or_404(name).snapshots.select_related("dataset", "split")
        return Response(SnapshotSerializer(snapshots.order_by("number"), many=True).data)

    @extend_schema(
        tags=[TAG],
        request=SnapshotCreateSerializer,
        responses={201: SnapshotSerializer, **REFUSED, **NOT_FOUND},
    )
    def post(self, request: Request, name: str) -> Response:
        dataset = dataset_or_404(name)
        given = SnapshotCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        snapshot = services.snapshot_create(
            dataset=dataset, created_by=request.user, **given.validated_data
        )
        return Response(SnapshotSerializer(snapshot).data, status=status.HTTP_201_CREATED)


def snapshot_or_404(name: str, number: int) -> DatasetSnapshot:
    snapshot = selectors.snapshot_by_number(dataset=dataset_or_404(name), number=number)
    if snapshot is None:
        raise NotFound(f"Dataset '{name}' has no snapshot {number}.")
    return snapshot


class SnapshotDetailView(DatasetView):
    required_permissions = {"GET": "models_registry.view_datasetsnapshot"}

    @extend_schema(tags=[TAG], responses={200: SnapshotSerializer, **NOT_FOUND})
    def get(self, request: Request, name: str, number: int) -> Response:
        return Response(SnapshotSerializer(snapshot_or_404(name, number)).data)


class SnapshotExportView(DatasetView):
    """Export a snapshot as a .zip of class folders with a labels.csv; it runs as a job."""

    required_permissions = {"POST": "models_registry.view_datasetsnapshot"}

    @extend_schema(
        tags=[TAG], request=None, responses={202: JobSerializer, **BAD_REQUEST, **NOT_FOUND}
    )
    def post(self, request: Request, name: str, number: int) -> Response:
        job = services.snapshot_export_start(
            snapshot=snapshot_or_404(name, number), requested_by=request.user
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class SnapshotExportDownloadView(DatasetView):
    """The zip of a finished export (409 while the job has not finished)."""

    required_permissions = {"GET": "models_registry.view_datasetsnapshot"}

    @extend_schema(
        tags=[TAG],
        responses={
            (200, "application/zip"): OpenApiResponse(description="The zip."),
            409: OpenApiResponse(
                description="The export has not finished (the job is in the body)."
            ),
            **NOT_FOUND,
        },
    )
    def get(self, request: Request, name: str, number: int, job_id) -> Response:
        snapshot = snapshot_or_404(name, number)
        job = get_object_or_404(Job, pk=job_id, kind=DATASET_EXPORT, target_id=str(snapshot.pk))
        if job.state != JobState.DONE:
            return Response(
                {
                    "detail": f"The export is {job.state}; download it when it is done.",
                    "job": JobSerializer(job).data,
                },
                status=status.HTTP_409_CONFLICT,
            )
        return export.zip_response(job)
