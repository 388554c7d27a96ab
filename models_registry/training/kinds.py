"""The training job kind, on a queue of its own so it never delays validations or imports."""

from common.jobs import register_job_kind

TRAINING = "training"


def register() -> None:
    register_job_kind(
        TRAINING,
        queue="training",
        run="models_registry.training.jobs.run_training",
        cleanup="models_registry.training.jobs.cleanup_training",
    )
