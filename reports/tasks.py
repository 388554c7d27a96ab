"""Background tasks of the reports, run by the task worker (``manage.py db_worker``)."""

from django_tasks import task


@task()
def build_export(job_id: str) -> str:
    """Build the workbook of an export job too large for a request; returns its status."""
    from reports.services import export_job_run

    return export_job_run(job_id=job_id).status
