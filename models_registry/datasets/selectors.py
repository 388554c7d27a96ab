"""Reads of datasets: counts per label and split, the last import, a snapshot's images."""

from collections import Counter

from django.db.models import QuerySet

from common.models import Job
from models_registry.datasets.kinds import DATASET_IMPORT
from models_registry.datasets.models import (
    Dataset,
    DatasetImage,
    DatasetSnapshot,
    SnapshotImage,
)

SNAPSHOT_SPLITS = ("train", "validation", "test", "all")


def dataset_images(*, dataset: Dataset, label: str | None = None, split: str | None = None):
    images = DatasetImage.objects.filter(dataset=dataset, removed_at__isnull=True)
    if label is not None:
        images = images.filter(label__name=label)
    if split is not None:
        images = images.filter(split=split)
    return images.select_related("label").order_by("id")


def label_counts(*, dataset: Dataset) -> dict[str, int]:
    """Images per label, every label of the dataset included (0 when emptied)."""
    counts = Counter(
        dataset_images(dataset=dataset).values_list("label__name", flat=True).order_by()
    )
    return {label.name: counts.get(label.name, 0) for label in dataset.labels.order_by("name")}


def split_counts(*, dataset: Dataset) -> dict[str, int]:
    return dict(Counter(dataset_images(dataset=dataset).values_list("split", flat=True).order_by()))


def import_jobs(*, dataset: Dataset) -> QuerySet[Job]:
    return Job.objects.filter(
        kind=DATASET_IMPORT,
        target_id=str(dataset.pk),
        target_type__model="dataset",
        target_type__app_label="models_registry",
    ).order_by("-created")


def last_import_job(*, dataset: Dataset) -> Job | None:
    return import_jobs(dataset=dataset).select_related("target_type", "requested_by").first()


def snapshot_items(*, snapshot: DatasetSnapshot, split: str = "test") -> QuerySet[SnapshotImage]:
    """A snapshot's frozen images of one split ("all" for every split), image and label joined."""
    items = SnapshotImage.objects.filter(snapshot=snapshot)
    if split != "all":
        items = items.filter(split=split)
    return items.select_related("image", "label", "label__defect_type").order_by("id")


def snapshot_by_number(*, dataset: Dataset, number: int) -> DatasetSnapshot | None:
    return DatasetSnapshot.objects.filter(dataset=dataset, number=number).first()
