"""The evaluation job kind, on a queue of its own so it never delays validations or exports."""

from common.jobs import register_job_kind

EVALUATION = "evaluation"


def register() -> None:
    register_job_kind(
        EVALUATION,
        queue="evaluations",
        run="models_registry.evaluation.jobs.run_evaluation",
        cleanup="models_registry.evaluation.jobs.cleanup_evaluation",
    )
