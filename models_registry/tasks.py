"""Background tasks of the registry, run by the task worker (``manage.py db_worker``)."""

from django_tasks import task


@task()
def validate_version(version_id: int) -> str:
    """Validate an uploaded version as a "validation" job; returns the final status.

    The job (made here, run at once) is what the version page follows step by
    step. A version that is no longer ``uploaded`` was validated by someone
    else in the meantime (``seed_demo`` validates synchronously; a re-request
    queues a new task and sets the status back): this task then leaves it alone.
    """
    from models_registry.choices import VersionStatus
    from models_registry.models import ModelVersion
    from models_registry.validation.jobs import validation_run_now

    status = ModelVersion.objects.filter(pk=version_id).values_list("status", flat=True).first()
    if status != VersionStatus.UPLOADED:
        return status or "missing"
    validation_run_now(version_id)
    return ModelVersion.objects.filter(pk=version_id).values_list("status", flat=True).first()
