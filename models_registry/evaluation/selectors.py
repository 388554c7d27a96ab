"""Reads of evaluations and their per-image rows, with what each page shows already joined."""

from django.db.models import Exists, OuterRef, QuerySet

from models_registry.evaluation.models import Evaluation, EvaluationResult
from models_registry.models import ModelVersion


def evaluation_list(*, version: ModelVersion | None = None) -> QuerySet[Evaluation]:
    """Evaluations newest first (of ``version``, as champion or challenger, if given)."""
    evaluations = Evaluation.objects.select_related(
        "version__model",
        "challenger__model",
        "snapshot__dataset",
        "job__target_type",
        "job__requested_by",
    )
    if version is not None:
        evaluations = evaluations.filter(version=version) | evaluations.filter(challenger=version)
    return evaluations.order_by("-created_at", "-id")


def result_list(
    *, evaluation: Evaluation, wrong: bool = False, disagree: bool = False
) -> QuerySet[EvaluationResult]:
    """The champion's row per image, in snapshot order; optionally only its mistakes, or
    only images where the challenger predicts another class."""
    rows = EvaluationResult.objects.filter(
        evaluation=evaluation, version_id=evaluation.version_id
    ).select_related("item__image", "item__label")
    if wrong:
        rows = rows.filter(correct=False)
    if disagree and evaluation.challenger_id:
        other = EvaluationResult.objects.filter(
            evaluation=evaluation,
            version_id=evaluation.challenger_id,
            item_id=OuterRef("item_id"),
        ).exclude(predicted=OuterRef("predicted"))
        rows = rows.filter(Exists(other))
    return rows.order_by("item_id")


def attach_challenger_results(*, evaluation: Evaluation, rows: list[EvaluationResult]) -> None:
    """Give each champion row the challenger's row of the same image (one query a page)."""
    if not evaluation.challenger_id:
        for row in rows:
            row.challenger_result = None
        return
    theirs = {
        row.item_id: row
        for row in EvaluationResult.objects.filter(
            evaluation=evaluation,
            version_id=evaluation.challenger_id,
            item_id__in=[row.item_id for row in rows],
        )
    }
    for row in rows:
        row.challenger_result = theirs.get(row.item_id)
