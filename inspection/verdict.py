"""The verdict on a frame from its label scores and the deployment's rules.

Pure functions over plain data, so the arithmetic is tested without a model.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from inspection.choices import ReviewReason, ReviewStatus, Verdict


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

    @classmethod
    def from_deployment(cls, deployment) -> "DecisionRules":
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
        )

    def index_of(self, label: str) -> int | None:
        for index, meaning in enumerate(self.labels):
            if meaning.label == label:
                return index
        return None

    def threshold_for(self, defect_type_id: int) -> float:
        return self.defect_thresholds.get(defect_type_id, self.confidence_threshold)


@dataclass(frozen=True)
class Judgement:
    verdict: str
    label: str
    defect_type_id: int | None
    confidence: float
    review_status: str
    review_reason: str
    top_k: list[dict]


def judge(
    scores: Sequence[float], rules: DecisionRules, *, sample: float = 1.0, k: int = 3
) -> Judgement:
    """Apply the rules to one score per label.

    - A defect label at or above its threshold (checked from the highest
      score down) fails the frame, or sends it to review if the deployment
      always reviews that defect type.
    - Otherwise the no-defect label at the top, at or above the confidence
      threshold, passes it; ``sample`` below the pass review rate also puts
      that pass in the review queue (to measure escapes).
    - Anything else is low confidence: review.

    ``fail`` and ``review`` always wait for an inspector.
    """
    if len(scores) != len(rules.labels):
        raise ValueError(f"{len(scores)} scores for {len(rules.labels)} labels")
    ranked = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
    top_k = [
        {"label": rules.labels[i].label, "confidence": round(float(scores[i]), 6)}
        for i in ranked[:k]
    ]

    def outcome(index: int, verdict: str, status: str, reason: str) -> Judgement:
        meaning = rules.labels[index]
        return Judgement(
            verdict=verdict,
            label=meaning.label,
            defect_type_id=meaning.defect_type_id,
            confidence=float(scores[index]),
            review_status=status,
            review_reason=reason,
            top_k=top_k,
        )

    for index in ranked:
        meaning = rules.labels[index]
        if meaning.defect_type_id is None:
            continue
        if scores[index] >= rules.threshold_for(meaning.defect_type_id):
            if meaning.defect_type_id in rules.always_review:
                return outcome(
                    index, Verdict.REVIEW, ReviewStatus.PENDING, ReviewReason.ALWAYS_REVIEW
                )
            return outcome(index, Verdict.FAIL, ReviewStatus.PENDING, ReviewReason.DEFECT)

    top = ranked[0]
    if rules.labels[top].defect_type_id is None and scores[top] >= rules.confidence_threshold:
        if sample < rules.pass_review_rate:
            return outcome(top, Verdict.PASS, ReviewStatus.PENDING, ReviewReason.SAMPLED_PASS)
        return outcome(top, Verdict.PASS, ReviewStatus.NOT_REQUIRED, ReviewReason.NONE)
    return outcome(top, Verdict.REVIEW, ReviewStatus.PENDING, ReviewReason.LOW_CONFIDENCE)
