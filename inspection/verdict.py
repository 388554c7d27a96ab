"""The verdict on a frame from its label scores and the deployment's rules.

Pure functions over plain data, so the arithmetic is tested without a model.
The verdict itself is ``models_registry.decision``'s (the evaluator simulates
the line with the same function); this module adds the review it calls for.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from inspection.choices import ReviewReason, ReviewStatus
from models_registry.decision import (
    ALWAYS_REVIEW,
    DEFECT,
    LOW_CONFIDENCE,
    PASS,
    LineRules,
    decide,
    unsure,
)

if TYPE_CHECKING:  # plain data here; the deployment is only read
    from models_registry.models import Deployment


@dataclass(frozen=True)
class LabelMeaning:
    label: str
    defect_type_id: int | None  # None: the label means no defect
    defect_code: str | None = None


@dataclass(frozen=True)
class DecisionRules:
    """A deployment's rules, frozen: deployments are immutable once activated."""

    deployment_id: int
    version_id: int
    labels: tuple[LabelMeaning, ...]
    confidence_threshold: float
    defect_thresholds: dict[int, float] = field(default_factory=dict)
    always_review: frozenset[int] = frozenset()
    pass_review_rate: float = 0.0
    edge_recheck_rate: float = 0.0
    low_margin_review: float = 0.0
    low_margin_daily_cap: int = 0

    @classmethod
    def from_deployment(cls, deployment: "Deployment") -> "DecisionRules":
        mappings = sorted(deployment.version.mappings.all(), key=lambda m: m.index)
        return cls(
            deployment_id=deployment.pk,
            version_id=deployment.version_id,
            labels=tuple(
                LabelMeaning(
                    label=m.label,
                    defect_type_id=m.defect_type_id,
                    defect_code=m.defect_type.code if m.defect_type_id else None,
                )
                for m in mappings
            ),
            confidence_threshold=deployment.confidence_threshold,
            defect_thresholds={
                t.defect_type_id: t.threshold for t in deployment.defect_thresholds.all()
            },
            always_review=frozenset(d.pk for d in deployment.always_review.all()),
            pass_review_rate=deployment.pass_review_rate,
            edge_recheck_rate=deployment.edge_recheck_rate,
            low_margin_review=deployment.low_margin_review,
            low_margin_daily_cap=deployment.low_margin_daily_cap,
        )

    @cached_property
    def line(self) -> LineRules:
        """The thresholds as the registry's decision reads them, defect types by id."""
        return LineRules(
            meanings=tuple(meaning.defect_type_id for meaning in self.labels),
            confidence_threshold=self.confidence_threshold,
            defect_thresholds=self.defect_thresholds,
            always_review=self.always_review,
            pass_review_rate=self.pass_review_rate,
            low_margin_review=self.low_margin_review,
        )

    def index_of(self, label: str) -> int | None:
        for index, meaning in enumerate(self.labels):
            if meaning.label == label:
                return index
        return None


@dataclass(frozen=True)
class Judgement:
    verdict: str
    label: str
    defect_type_id: int | None
    confidence: float
    review_status: str
    review_reason: str
    top_k: list[dict]


REVIEW_REASONS = {
    DEFECT: ReviewReason.DEFECT,
    ALWAYS_REVIEW: ReviewReason.ALWAYS_REVIEW,
    LOW_CONFIDENCE: ReviewReason.LOW_CONFIDENCE,
}


def judge(
    scores: Sequence[float],
    rules: DecisionRules,
    *,
    sample: float = 1.0,
    k: int = 3,
    low_margin_room: Callable[[], bool] | None = None,
) -> Judgement:
    """Apply the rules to one score per label.

    The verdict is the registry's one rule (``models_registry.decision.decide``:
    a defect at its threshold fails, or is reviewed if its type always is; a
    confident no-defect label passes; anything else is review). Here the line
    adds who looks next: ``fail`` and ``review`` always wait for an inspector,
    and ``sample`` below the pass review rate puts a pass in the review queue
    too (to measure escapes). A pass the model was unsure of (its two best
    labels closer than the deployment's low-margin setting) waits for an
    inspector as well, while ``low_margin_room()`` says the station's daily
    cap has room (asked only for such a frame). The audit sample comes first,
    so the escape estimate stays a random sample of passes.
    """
    decision = decide(scores, rules.line)
    ranked = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
    if decision.verdict != PASS:
        status, reason = ReviewStatus.PENDING, REVIEW_REASONS[decision.reason]
    elif sample < rules.pass_review_rate:
        status, reason = ReviewStatus.PENDING, ReviewReason.SAMPLED_PASS
    elif unsure(scores, rules.line) and (low_margin_room is None or low_margin_room()):
        status, reason = ReviewStatus.PENDING, ReviewReason.LOW_MARGIN
    else:
        status, reason = ReviewStatus.NOT_REQUIRED, ReviewReason.NONE
    meaning = rules.labels[decision.index]
    return Judgement(
        verdict=decision.verdict,
        label=meaning.label,
        defect_type_id=meaning.defect_type_id,
        confidence=float(scores[decision.index]),
        review_status=status,
        review_reason=reason,
        top_k=[
            {"label": rules.labels[i].label, "confidence": round(float(scores[i]), 6)}
            for i in ranked[:k]
        ],
    )
