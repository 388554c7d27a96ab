"""Writes of the reports app: export jobs for workbooks too large for a request."""

import logging
import tempfile

from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from common.files import delete_on_error
from reports.exports import write_workbook
from reports.filters import ReportFilterError, ReportFilters, filters_from_params
from reports.models import ExportJob, ExportStatus

logger = logging.getLogger(__name__)


def export_filename(filters: ReportFilters) -> str:
    """The download name, e.g. linesight-report-2026-03-28-to-2026-03-29.xlsx."""
    return f"linesight-report-{filters.date_from:%Y-%m-%d}-to-{filters.date_to:%Y-%m-%d}.xlsx"


def export_job_request(*, user: AbstractBaseUser, filters: ReportFilters) -> ExportJob:
    """Queue a workbook for the task worker; it is built after this transaction commits."""
    from reports.tasks import build_export

    with transaction.atomic():
        job = ExportJob.objects.create(requested_by=user, filters=filters.as_params())
        transaction.on_commit(lambda: build_export.enqueue(str(job.pk)))
    return job


def export_job_run(*, job_id: str) -> ExportJob:
    """Build a queued job's workbook into storage and mark it done, or failed with the reason.

    A job that is no longer queued is left as it is, so a task delivered twice
    builds the workbook once.
    """
    claimed = ExportJob.objects.filter(pk=job_id, status=ExportStatus.QUEUED).update(
        status=ExportStatus.RUNNING
    )
    job = ExportJob.objects.get(pk=job_id)
    if not claimed:
        return job
    try:
        filters = filters_from_params(job.filters)
        with tempfile.TemporaryFile(prefix="linesight-export-") as workbook:
            rows = write_workbook(filters, workbook)
            workbook.seek(0)
            job.file.save(f"exports/{job.pk}.xlsx", File(workbook), save=False)
        with delete_on_error(job.file.storage, job.file.name), transaction.atomic():
            job.status = ExportStatus.DONE
            job.row_count = rows
            job.finished_at = timezone.now()
            job.save(update_fields=["status", "row_count", "file", "finished_at"])
    except ReportFilterError as exc:
        # The filters were checked when the job was made; master data changed since.
        logger.warning("Export %s failed: %s", job_id, exc.message)
        _job_failed(job, exc.message)
    except Exception as exc:
        logger.exception("Export %s failed", job_id)
        _job_failed(job, str(exc) or exc.__class__.__name__)
    return job


def _job_failed(job: ExportJob, reason: str) -> None:
    ExportJob.objects.filter(pk=job.pk).update(
        status=ExportStatus.FAILED, error=reason, finished_at=timezone.now(), file=""
    )
    job.refresh_from_db()
