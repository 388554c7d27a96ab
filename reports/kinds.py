"""The job kinds of the reports app (registered from its ``AppConfig.ready()``)."""

from common.jobs import register_job_kind

REPORT_EXPORT = "report_export"


def register() -> None:
    register_job_kind(
        REPORT_EXPORT,
        queue="exports",
        run="reports.jobs.run_report_export",
        cleanup="reports.jobs.cleanup_report_export",
    )
