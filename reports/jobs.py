"""The ``report_export`` job: a workbook too large for a request, built by the task worker.

The workbook is written to a temporary file, then saved to storage under a
name fixed by the job (``exports/<job id>.xlsx``), so a job delivered or run
again writes one file; a run that fails after saving deletes it, and the
sweep's cleanup deletes what a dead worker left.
"""

import tempfile

from django.core.files import File
from django.core.files.storage import default_storage
from django.urls import reverse

from common.jobs import JobFailed, job_progress
from common.models import Job
from reports import selectors
from reports.exports import export_filename, write_workbook
from reports.filters import ReportFilterError, filters_from_params

# The rows are most of the work; saving the workbook (zipping its sheets) the rest.
ROWS_SHARE = 0.9


def export_file_name(job: Job) -> str:
    """Where the job's workbook is stored: fixed by the job, so a redelivery overwrites it."""
    return f"exports/{job.pk}.xlsx"


def run_report_export(job: Job) -> dict:
    """Build the workbook of the job's filters into storage; the result says how to get it."""
    params = job.payload.get("filters", {})
    try:
        filters = filters_from_params(params)
    except ReportFilterError as error:
        # Checked when the job was made; master data changed since.
        raise JobFailed(error.message) from None
    total = max(selectors.row_count(filters), 1)

    def rows_written(done: int) -> None:
        job_progress(job, ROWS_SHARE * min(done / total, 1), f"Wrote {done} of {total} rows")

    job_progress(job, 0.0, f"Writing {total} rows", force=True)
    name = export_file_name(job)
    with tempfile.TemporaryFile(prefix="linesight-export-") as workbook:
        rows = write_workbook(filters, workbook, on_rows=rows_written)
        job_progress(job, ROWS_SHARE, "Saving the workbook", force=True)
        workbook.seek(0)
        default_storage.delete(name)  # what an earlier delivery of this job left
        try:
            stored = default_storage.save(name, File(workbook, name=name.rpartition("/")[2]))
            job_progress(job, 0.99, "Saved", force=True)  # raises if the job is no longer ours
        except BaseException:
            default_storage.delete(name)
            raise
    return {
        "file": stored,
        "row_count": rows,
        "filename": export_filename(params),
        "download_url": reverse("reports:export-job-download", args=[job.pk]),
    }


def cleanup_report_export(job: Job) -> None:
    """Delete a dead export's partial workbook (the sweep calls this)."""
    default_storage.delete(export_file_name(job))
