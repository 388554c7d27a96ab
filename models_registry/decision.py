"""How a deployment's thresholds turn one frame's scores into pass, fail or review.

The one rule both the line (``inspection.verdict.judge``, which adds review
status and audit sampling) and the lab (the evaluation's line simulation)
apply. Pure Python over plain data, so it is tested without a model.
"""

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

PASS, FAIL, REVIEW = "pass", "fail", "review"

# Why the decision was taken: a review or fail names the reason an inspector sees.
DEFECT, ALWAYS_REVIEW, CONFIDENT, LOW_CONFIDENCE = (
    "defect",
    "always_review",
    "confident",
    "low_confidence",
)


@dataclass(frozen=True)
class LineRules:
    """A deployment's thresholds over one version's outputs.

    ``meanings`` gives each output label's defect type, in output order (None:
    the label means no defect). A defect type is whatever key the caller names
    it by (the line its id, the lab its code); ``defect_thresholds`` and
    ``always_review`` use the same keys.
    """

    meanings: tuple[Hashable | None, ...]
    confidence_threshold: float = 0.8
    defect_thresholds: Mapping[Hashable, float] = field(default_factory=dict)
    always_review: frozenset[Hashable] = frozenset()
    pass_review_rate: float = 0.0
    low_margin_review: float = 0.0  # 0: off

    def threshold_for(self, defect: Hashable) -> float:
        return self.defect_thresholds.get(defect, self.confidence_threshold)

    def with_threshold(self, defect: Hashable, threshold: float) -> "LineRules":
        return LineRules(
            meanings=self.meanings,
            confidence_threshold=self.confidence_threshold,
            defect_thresholds={**self.defect_thresholds, defect: threshold},
            always_review=self.always_review,
            pass_review_rate=self.pass_review_rate,
            low_margin_review=self.low_margin_review,
        )


@dataclass(frozen=True)
class Decision:
    verdict: str  # PASS, FAIL or REVIEW
    index: int  # the output label the verdict rests on
    reason: str  # DEFECT, ALWAYS_REVIEW, CONFIDENT or LOW_CONFIDENCE


def decide(scores: Sequence[float], rules: LineRules) -> Decision:
    """The verdict on one frame's scores (one per output label) under ``rules``.

    A defect label at or above its threshold (highest score first) fails the
    frame, or sends it to review when its type is always reviewed; else a
    confident no-defect label at the top passes it; anything else is review.
    """
    if len(scores) != len(rules.meanings):
        raise ValueError(f"{len(scores)} scores for {len(rules.meanings)} labels")
    ranked = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
    for index in ranked:
        defect = rules.meanings[index]
        if defect is not None and scores[index] >= rules.threshold_for(defect):
            if defect in rules.always_review:
                return Decision(REVIEW, index, ALWAYS_REVIEW)
            return Decision(FAIL, index, DEFECT)
    top = ranked[0]
    if rules.meanings[top] is None and scores[top] >= rules.confidence_threshold:
        return Decision(PASS, top, CONFIDENT)
    return Decision(REVIEW, top, LOW_CONFIDENCE)


def margin(scores: Sequence[float]) -> float:
    """How far the best label is ahead of the second best (1.0 with a single label)."""
    if len(scores) < 2:
        return 1.0
    first, second = sorted(scores, reverse=True)[:2]
    return float(first - second)


def unsure(scores: Sequence[float], rules: LineRules) -> bool:
    """Whether the model hesitated between its two best labels: the margin between them is
    below the deployment's low-margin setting (active learning sends such a pass to review)."""
    return rules.low_margin_review > 0 and margin(scores) < rules.low_margin_review
