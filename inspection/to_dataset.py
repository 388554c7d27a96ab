"""A dataset from verified inspections: the frames inspectors decided, labelled with their
final word, added to a new or existing dataset as a new snapshot.

It reads inspections and writes the registry, so it lives in inspection (the higher of the
two) and adds the images through the registry's service ``dataset_add_images`` (the import's
checks and sha256 deduplication). The label is the frame's decision in force
(``latest_verification``: a later decision, e.g. after an undo, replaces an earlier one):
its defect type (a correction names the right one; a confirmation keeps the model's) or,
with none, the dataset's no-defect label. The frame's original bytes are kept, never
re-encoded. It runs as a job on the "imports" queue.
"""

import datetime as dt
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from common.jobs import JobFailed, job_enqueue, job_progress, register_job_kind
from common.models import Job
from inspection.choices import ReviewStatus
from inspection.models import Inspection, Verification
from inspection.selectors import latest_verification
from masterdata.models import DefectType, Line, Product, Station
from models_registry.datasets.choices import ImageSource
from models_registry.datasets.importing import cleanup_import
from models_registry.datasets.models import Dataset
from models_registry.datasets.services import (
    IncomingImage,
    dataset_add_images,
    dataset_create,
    label_name_for_meaning,
    snapshot_create,
)

FROM_INSPECTIONS = "dataset_from_inspections"
MAX_FRAME_READ_BYTES = 256 * 1024 * 1024


def register() -> None:
    """Declare the job kind (from InspectionConfig.ready())."""
    register_job_kind(
        FROM_INSPECTIONS,
        queue="imports",
        run="inspection.to_dataset.run_from_inspections",
        cleanup="models_registry.datasets.importing.cleanup_import",
    )


@dataclass(frozen=True)
class FrameFilter:
    """Which verified frames: of a station, line and/or product, captured between two plant
    dates (inclusive), optionally only those where the inspector disagreed with the model."""

    station: str = ""  # codes (the product's SKU), as the API takes them
    line: str = ""
    product: str = ""
    date_from: str = ""  # ISO dates
    date_to: str = ""
    disagreed_only: bool = False

    @classmethod
    def of(
        cls,
        *,
        station: Station | None = None,
        line: Line | None = None,
        product: Product | None = None,
        date_from: dt.date | None = None,
        date_to: dt.date | None = None,
        disagreed_only: bool = False,
    ) -> "FrameFilter":
        if date_from and date_to and date_from > date_to:
            raise ValidationError({"to": "The end date is before the start date."})
        return cls(
            station=station.code if station else "",
            line=line.code if line else "",
            product=product.sku if product else "",
            date_from=date_from.isoformat() if date_from else "",
            date_to=date_to.isoformat() if date_to else "",
            disagreed_only=bool(disagreed_only),
        )

    def describe(self) -> str:
        parts = [f"{name} {value}" for name, value in self._where().items() if value]
        if self.disagreed_only:
            parts.append("where the inspector disagreed with the model")
        return ", ".join(parts) or "every verified frame"

    def _where(self) -> dict[str, str]:
        return {
            "station": self.station,
            "line": self.line,
            "product": self.product,
            "from": self.date_from,
            "to": self.date_to,
        }


def verified_frames(frames: FrameFilter) -> QuerySet[Inspection]:
    """The verified inspections the filter names, oldest first."""
    queryset = Inspection.objects.filter(review_status=ReviewStatus.VERIFIED)
    if frames.station:
        queryset = queryset.filter(station__code=frames.station)
    if frames.line:
        queryset = queryset.filter(line__code=frames.line)
    if frames.product:
        queryset = queryset.filter(product__sku=frames.product)
    if frames.date_from:
        queryset = queryset.filter(local_date__gte=frames.date_from)
    if frames.date_to:
        queryset = queryset.filter(local_date__lte=frames.date_to)
    return queryset.order_by("id")


def inspector_disagreed(inspection: Inspection, decision: Verification) -> bool:
    """The decision in force names another defect type (or none) than the model's call."""
    return decision.defect_type_id != inspection.defect_type_id


def dataset_from_inspections_start(
    *, dataset: str, frames: FrameFilter, description: str = "", requested_by=None
) -> Job:
    """Check the request, make the dataset if it is new, and queue the job that fills it.

    Refused before anything is made when no verified frame matches.
    """
    if not verified_frames(frames).exists():
        raise ValidationError(
            {"filters": f"No verified inspection matches ({frames.describe()}); nothing to add."}
        )
    with transaction.atomic():
        target = Dataset.objects.filter(name=dataset).first()
        if target is None:
            description = description or f"From verified inspections: {frames.describe()}."
            target = dataset_create(name=dataset, description=description, created_by=requested_by)
        return job_enqueue(
            kind=FROM_INSPECTIONS, target=target, requested_by=requested_by, payload=asdict(frames)
        )


@dataclass
class _Labels:
    """The dataset's label name for each final defect type (None: no defect), and what a
    label made new must mean."""

    dataset: Dataset
    defect_types: dict[int, DefectType]
    names: dict[int | None, str] = field(default_factory=dict)
    meanings: dict[str, DefectType | None] = field(default_factory=dict)

    def name_for(self, defect_type_id: int | None) -> str:
        if defect_type_id not in self.names:
            defect_type = self.defect_types[defect_type_id] if defect_type_id else None
            name = label_name_for_meaning(dataset=self.dataset, defect_type=defect_type)
            self.names[defect_type_id] = name
            self.meanings.setdefault(name, defect_type)
        return self.names[defect_type_id]


def _frame_bytes(inspection: Inspection) -> bytes | None:
    try:
        with inspection.image.open("rb") as stored:
            return stored.read(MAX_FRAME_READ_BYTES)
    except (FileNotFoundError, OSError, ValueError):
        return None


def _incoming(job: Job, frames: FrameFilter, labels: _Labels, missing: list) -> Iterator:
    queryset = verified_frames(frames)
    total = queryset.count() or 1
    for done, inspection in enumerate(queryset.iterator(chunk_size=200), start=1):
        job_progress(job, 0.9 * done / total, f"Read {done} of {total} verified frames")
        decision = latest_verification(inspection=inspection)
        if decision is None or (
            frames.disagreed_only and not inspector_disagreed(inspection, decision)
        ):
            continue
        name = f"inspection-{inspection.pk}{PurePosixPath(inspection.image.name).suffix}"
        data = _frame_bytes(inspection)
        if data is None:
            reason = (
                "the frame's image was removed by retention"
                if inspection.image_deleted_at
                else "the frame's file is missing"
            )
            missing.append({"file": name, "label": "", "reason": reason})
            continue
        yield IncomingImage(
            data=data,
            label=labels.name_for(decision.defect_type_id),
            name=name,
            # Frames of one serial are one part: they stay on one side of a split.
            group=f"serial {inspection.serial}" if inspection.serial else name,
            source=ImageSource.INSPECTION,
            inspection_id=inspection.pk,
        )


def verified_frames_add(
    *, job: Job, dataset: Dataset, frames: FrameFilter
) -> tuple[dict, list[dict]]:
    """Add the verified frames ``frames`` selects to ``dataset`` (all or none), the final
    word as label; return the import's report and the frames whose image could not be read.
    """
    labels = _Labels(dataset=dataset, defect_types={d.pk: d for d in DefectType.objects.all()})
    missing: list[dict] = []
    report = dataset_add_images(
        dataset=dataset,
        images=_incoming(job, frames, labels, missing),
        meanings=labels.meanings,
        job=job,
    )
    return report, missing


def run_from_inspections(job: Job) -> dict:
    """The job: add the filtered verified frames (all or none), then make a snapshot."""
    dataset = Dataset.objects.get(pk=job.target_id)
    frames = FrameFilter(**job.payload)
    cleanup_import(job)  # what an earlier attempt of this job left when its worker died
    job_progress(job, 0.0, "Reading verified frames", force=True)
    report, missing = verified_frames_add(job=job, dataset=dataset, frames=frames)
    report["skipped"] = missing + report["skipped"]
    report["skipped_count"] += len(missing)
    report["filters"] = frames.describe()
    if not report["imported"] and not report["duplicates"]:
        raise JobFailed(
            f"No frame was added ({frames.describe()}): none matched, or none could be read.",
            result=report,
        )
    job_progress(job, 0.97, "Making the snapshot", force=True)
    snapshot = snapshot_create(
        dataset=dataset,
        created_by=job.requested_by,
        note=f"From verified inspections: {frames.describe()}.",
    )
    report["snapshot"] = snapshot.number
    return report
