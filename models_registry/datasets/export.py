"""The ``dataset_export`` job: a snapshot as a .zip of class folders with a labels.csv.

The zip is written image by image to a temporary file (the images' original
bytes, stored without recompression; one image in memory at a time), then
saved to storage under a name fixed by the job, so a job delivered again
writes the same file once. ``labels.csv`` has the columns ``file,label,split,group``:
the archive imports again as it is (the import reads labels.csv).
"""

import csv
import io
import shutil
import tempfile
import zipfile
from pathlib import PurePosixPath

from django.conf import settings
from django.core.files import File
from django.http import FileResponse, Http404
from django.urls import reverse

from common.jobs import job_progress
from common.models import Job
from models_registry.datasets.images import IMAGE_FORMATS
from models_registry.datasets.importing import image_storage
from models_registry.datasets.models import DatasetSnapshot
from models_registry.datasets.selectors import snapshot_items
from models_registry.datasets.splitting import group_keys

COPY_CHUNK = 1024 * 1024


def export_name(job: Job) -> str:
    """Where a job's zip is stored (fixed by the job, so a second delivery overwrites it)."""
    return f"datasets/exports/{job.pk.hex}.zip"


def download_filename(snapshot: DatasetSnapshot) -> str:
    return f"{snapshot.dataset.name}-snapshot-{snapshot.number}.zip"


def _groups(snapshot: DatasetSnapshot) -> dict[int, str]:
    """Each image's group in the split the snapshot froze (given, or derived from its name)."""
    rows = snapshot.items.values_list("image_id", "image__original_name", "image__group")
    grouping = (snapshot.split_parameters or {}).get("grouping", "auto")
    keys = group_keys(rows.order_by("id").iterator(2000), grouping)
    # "given:x" and "name:x" read as x; an image that is its own group ("#id") has none.
    return {i: key.partition(":")[2] if ":" in key else "" for i, key in keys.items()}


def _member_name(item, used: set[str]) -> str:
    """``<label>/<original file name>``; the sha256 goes in front when the name is taken."""
    image = item.image
    extension = IMAGE_FORMATS.get(image.format, "")
    base = PurePosixPath(image.original_name.replace("\\", "/")).name or f"{image.sha256[:16]}"
    if not PurePosixPath(base).suffix:
        base += extension
    name = f"{item.label.name}/{base}"
    if name in used:
        name = f"{item.label.name}/{image.sha256[:16]}_{base}"
    used.add(name)
    return name


def _write_zip(job: Job, snapshot: DatasetSnapshot, target) -> int:
    groups = _groups(snapshot)
    total = snapshot.image_count or 1
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["file", "label", "split", "group"])
    used: set[str] = set()
    count = 0
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for count, item in enumerate(
            snapshot_items(snapshot=snapshot, split="all").iterator(500), start=1
        ):
            job_progress(job, 0.95 * count / total, f"Exported {count} of {total} images")
            name = _member_name(item, used)
            with item.image.file.open("rb") as source, archive.open(name, "w") as sink:
                shutil.copyfileobj(source, sink, COPY_CHUNK)
            writer.writerow([name, item.label.name, item.split, groups.get(item.image_id, "")])
        archive.writestr("labels.csv", rows.getvalue(), zipfile.ZIP_DEFLATED)
    return count


def run_export(job: Job) -> dict:
    """Write the snapshot's zip to storage; the result names the file and how to get it."""
    snapshot = DatasetSnapshot.objects.select_related("dataset").get(pk=job.target_id)
    storage, name = image_storage(), export_name(job)
    work_dir = settings.LINESIGHT.get("SANDBOX_WORK_DIR") or None
    with tempfile.TemporaryFile(dir=work_dir) as target:
        count = _write_zip(job, snapshot, target)
        size = target.tell()
        target.seek(0)
        job_progress(job, 0.97, "Saving the zip", force=True)
        storage.delete(name)  # what an earlier delivery of this job left
        stored = storage.save(name, File(target, name=PurePosixPath(name).name))
    return {
        "file": stored,
        "filename": download_filename(snapshot),
        "size_bytes": size,
        "images": count,
        "dataset": snapshot.dataset.name,
        "snapshot": snapshot.number,
        "download": reverse(
            "registry:dataset-snapshot-export-download",
            kwargs={"name": snapshot.dataset.name, "number": snapshot.number, "job_id": job.pk},
        ),
    }


def cleanup_export(job: Job) -> None:
    """Delete a dead export's partial zip (the sweep calls this)."""
    image_storage().delete(export_name(job))


def zip_response(job: Job) -> FileResponse:
    """A finished export's zip as a download (callers check who may have it)."""
    name = (job.result or {}).get("file", "")
    storage = image_storage()
    if not name or not storage.exists(name):
        raise Http404("This export's file is gone; export the snapshot again.")
    return FileResponse(
        storage.open(name, "rb"),
        as_attachment=True,
        filename=job.result.get("filename") or "snapshot.zip",
        content_type="application/zip",
    )
