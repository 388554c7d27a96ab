"""Datasets: labelled photographs, their splits, and the snapshots evaluations refer to.

Files go through Django's storage. A snapshot freezes which images, with which
label and split, a result was computed on; snapshot rows are never changed.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from masterdata.models import DefectType
from masterdata.validators import code_validator
from models_registry.datasets.choices import ImageSource, Split
from models_registry.models import LabelMapping

__all__ = [
    "Dataset",
    "DatasetImage",
    "DatasetLabel",
    "DatasetSnapshot",
    "DatasetSplit",
    "SnapshotImage",
]

MAX_LABEL_CHARS = 100


class Dataset(models.Model):
    """A named collection of labelled photographs, e.g. 'casting-line-2'."""

    name = models.CharField(max_length=50, unique=True, validators=[code_validator])
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DatasetLabel(models.Model):
    """A class of a dataset and what it means: a defect type, or no defect (as for versions)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=MAX_LABEL_CHARS)
    defect_type = models.ForeignKey(
        DefectType, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    no_defect = models.BooleanField(default=False, help_text="This label means the part is good.")

    class Meta:
        ordering = ["dataset", "name"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="dataset_label_unique"),
            models.CheckConstraint(
                condition=~Q(no_defect=True, defect_type__isnull=False),
                name="dataset_label_defect_or_no_defect",
            ),
        ]

    # The same meaning rule as a version's label mapping, not a second copy of it.
    is_mapped = LabelMapping.is_mapped
    meaning = LabelMapping.meaning
    clean = LabelMapping.clean

    def __str__(self) -> str:
        return self.name


def image_upload_to(image: "DatasetImage", filename: str) -> str:
    return f"datasets/{image.dataset_id}/{filename}"


class DatasetImage(models.Model):
    """One photograph of a dataset: its bytes as uploaded, what it shows, where it came from.

    ``removed_at`` hides an image from the dataset while snapshots that hold
    it keep it (a snapshot is immutable).
    """

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="images")
    file = models.FileField(upload_to=image_upload_to, max_length=300)
    thumbnail = models.FileField(upload_to=image_upload_to, max_length=300, blank=True)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.PositiveBigIntegerField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    mode = models.CharField(max_length=10, help_text="Pillow mode, e.g. L, RGB.")
    format = models.CharField(max_length=10, help_text="JPEG, PNG, BMP or TIFF.")
    label = models.ForeignKey(DatasetLabel, on_delete=models.PROTECT, related_name="images")
    split = models.CharField(max_length=20, choices=Split.choices, default=Split.UNASSIGNED)
    group = models.CharField(
        max_length=200, blank=True, help_text="Shots of one part; a group never spans splits."
    )
    original_name = models.CharField(max_length=300, blank=True)
    source = models.CharField(
        max_length=20, choices=ImageSource.choices, default=ImageSource.UPLOAD
    )
    # A plain id, not a foreign key: inspection depends on the registry, not the reverse.
    inspection_id = models.PositiveBigIntegerField(null=True, blank=True, db_index=True)
    import_job = models.ForeignKey(
        "common.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["dataset", "id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "sha256"], name="dataset_image_unique_sha"),
        ]
        indexes = [models.Index(fields=["dataset", "label", "split"])]

    def __str__(self) -> str:
        return f"{self.original_name or self.sha256[:12]} ({self.label.name})"


class DatasetSplit(models.Model):
    """One explicit (re-)split of a dataset: the settings it used and what it gave."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="splits")
    number = models.PositiveIntegerField()
    parameters = models.JSONField(help_text="shares, seed, grouping")
    counts = models.JSONField(default=dict, help_text="{split: {label: n}}")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "number"], name="dataset_split_number"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset.name} split {self.number}"


class DatasetSnapshot(models.Model):
    """A numbered, immutable freeze of a dataset's images, labels and splits."""

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="snapshots")
    number = models.PositiveIntegerField()
    split = models.ForeignKey(
        DatasetSplit, on_delete=models.PROTECT, null=True, blank=True, related_name="snapshots"
    )
    split_parameters = models.JSONField(default=dict, blank=True)
    counts = models.JSONField(default=dict, help_text="{split: {label: n}}")
    image_count = models.PositiveIntegerField(default=0)
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "number"], name="dataset_snapshot_number"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset.name} snapshot {self.number}"


class SnapshotImage(models.Model):
    """An image as a snapshot froze it: with the label and split it had then."""

    snapshot = models.ForeignKey(DatasetSnapshot, on_delete=models.CASCADE, related_name="items")
    image = models.ForeignKey(DatasetImage, on_delete=models.PROTECT, related_name="+")
    label = models.ForeignKey(DatasetLabel, on_delete=models.PROTECT, related_name="+")
    split = models.CharField(max_length=20, choices=Split.choices)

    class Meta:
        ordering = ["snapshot", "id"]
        constraints = [
            models.UniqueConstraint(fields=["snapshot", "image"], name="snapshot_image_unique"),
        ]
        indexes = [models.Index(fields=["snapshot", "split"])]

    def __str__(self) -> str:
        return f"{self.snapshot}: {self.image_id} {self.label_id} {self.split}"
