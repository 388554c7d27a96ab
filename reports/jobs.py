"""The ``report_export`` job: a workbook or CSV too large for a request, built by the task worker.

The job's payload holds the report filters and the format (``xlsx`` unless
said otherwise: jobs queued before CSV existed are workbooks). The file is
written to a temporary file, then saved to storage under a name fixed by the
job (``exports/<job id>.<format>``), so a job delivered or run again writes
one file; a run that fails after saving deletes it, and the sweep's cleanup
deletes what a dead worker left.
"""

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from django.core.files import File
from django.core.files.storage import default_storage
from django.urls import reverse

from common.jobs import JobFailed, job_progress
from common.models import Job
from reports import selectors
from reports.exports import csv_row_count, export_filename, write_csv, write_workbook
from reports.filters import ReportFilterError, ReportFilters, filters_from_params

# The rows are most of the work; saving the file (zipping a workbook's sheets) the rest.
ROWS_SHARE = 0.9


@dataclass(frozen=True)
class ExportWriter:
    """How one format counts the rows it will hold and writes them to a binary file."""

    row_count: Callable[[ReportFilters], int]
    write: Callable[..., int]  # write(filters, file, *, on_rows) -> rows written


WRITERS = {
    "xlsx": ExportWriter(row_count=selectors.row_count, write=write_workbook),
    "csv": ExportWriter(row_count=csv_row_count, write=write_csv),
}


def export_format(job: Job) -> str:
    """The job's file format: ``xlsx`` or ``csv``."""
    return job.payload.get("format", "xlsx")


def export_file_name(job: Job) -> str:
    """Where the job's file is stored: fixed by the job, so a redelivery overwrites it."""
    return f"exports/{job.pk}.{export_format(job)}"


def export_download_name(job: Job) -> str:
    """The name a person's download gets, e.g. linesight-report-2026-03-28-to-2026-03-29.csv."""
    return export_filename(job.payload.get("filters", {}), export_format(job))


def run_report_export(job: Job) -> dict:
    """Build the file of the job's filters into storage; the result says how to get it."""
    params = job.payload.get("filters", {})
    writer = WRITERS.get(export_format(job))
    if writer is None:
        raise JobFailed(f"Unknown export format '{export_format(job)}'.")
    try:
        filters = filters_from_params(params)
    except ReportFilterError as error:
        # Checked when the job was made; master data changed since.
        raise JobFailed(error.message) from None
    total = max(writer.row_count(filters), 1)

    def rows_written(done: int) -> None:
        job_progress(job, ROWS_SHARE * min(done / total, 1), f"Wrote {done} of {total} rows")

    job_progress(job, 0.0, f"Writing {total} rows", force=True)
    with tempfile.TemporaryFile(prefix="linesight-export-") as file:
        rows = writer.write(filters, file, on_rows=rows_written)
        job_progress(job, ROWS_SHARE, "Saving the file", force=True)
        stored = _store(job, file)
    return {
        "file": stored,
        "row_count": rows,
        "filename": export_download_name(job),
        "download_url": reverse("reports:export-job-download", args=[job.pk]),
    }


def _store(job: Job, file: IO[bytes]) -> str:
    """Save the written file under the job's name; nothing is left behind if that fails."""
    name = export_file_name(job)
    file.seek(0)
    default_storage.delete(name)  # what an earlier delivery of this job left
    try:
        stored = default_storage.save(name, File(file, name=name.rpartition("/")[2]))
        job_progress(job, 0.99, "Saved", force=True)  # raises if the job is no longer ours
    except BaseException:
        default_storage.delete(name)
        raise
    return stored


def cleanup_report_export(job: Job) -> None:
    """Delete a dead export's partial file (the sweep calls this)."""
    default_storage.delete(export_file_name(job))
