"""The job kinds datasets run in the background (registered from the app's ready())."""

from common.jobs import register_job_kind

DATASET_IMPORT = "dataset_import"
DATASET_EXPORT = "dataset_export"


def register() -> None:
    register_job_kind(
        DATASET_IMPORT,
        queue="imports",
        run="models_registry.datasets.importing.run_import",
        cleanup="models_registry.datasets.importing.cleanup_import",
    )
    register_job_kind(
        DATASET_EXPORT,
        queue="exports",
        run="models_registry.datasets.export.run_export",
        cleanup="models_registry.datasets.export.cleanup_export",
    )
