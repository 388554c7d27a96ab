"""Writes of the reports app: export jobs for workbooks too large for a request.

The task worker runs a queued job with ``reports.jobs.run_report_export``.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from common.jobs import job_enqueue
from common.models import Job
from reports.filters import ReportFilters
from reports.kinds import REPORT_EXPORT


def export_job_request(*, user: AbstractBaseUser, filters: ReportFilters) -> Job:
    """Queue a workbook on the exports queue; the worker gets it after this transaction commits."""
    with transaction.atomic():
        return job_enqueue(
            kind=REPORT_EXPORT, requested_by=user, payload={"filters": filters.as_params()}
        )
