"""The job kinds of the reports app (registered from its ``AppConfig.ready()``)."""

from common.jobs import register_job_kind

REPORT_EXPORT = "report_export"
ROLLUPS_REFRESH = "rollups_refresh"


def register() -> None:
    register_job_kind(
        REPORT_EXPORT,
        queue="exports",
        run="reports.jobs.run_report_export",
        cleanup="reports.jobs.cleanup_report_export",
    )
    register_job_kind(ROLLUPS_REFRESH, queue="default", run="reports.rollups.run_rollups_refresh")
