"""Writes of the reports app: export jobs for workbooks and CSVs too large for a request.

The task worker runs a queued job with ``reports.jobs.run_report_export``.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from common.jobs import job_enqueue
from common.models import Job
from reports.exports import EXPORT_FORMATS
from reports.filters import ReportFilters
from reports.kinds import REPORT_EXPORT


def export_job_request(
    *, user: AbstractBaseUser, filters: ReportFilters, file_format: str = "xlsx"
) -> Job:
    """Queue a workbook (or CSV) on the exports queue; the worker gets it after commit."""
    if file_format not in EXPORT_FORMATS:
        raise ValidationError(
            {"format": f"'{file_format}' is not a format; choose {' or '.join(EXPORT_FORMATS)}."}
        )
    with transaction.atomic():
        return job_enqueue(
            kind=REPORT_EXPORT,
            requested_by=user,
            payload={"filters": filters.as_params(), "format": file_format},
        )
