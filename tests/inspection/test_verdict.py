"""Verdict arithmetic on plain scores (no model needed to check the rules)."""

import pytest

from inspection.verdict import DecisionRules, LabelMeaning, judge

OK, CAP, CRACK = 0, 1, 2


def rules(**overrides) -> DecisionRules:
    return DecisionRules(
        deployment_id=1,
        version_id=1,
        labels=(
            LabelMeaning("ok", None),
            LabelMeaning("missing_cap", 10, "missing_cap"),
            LabelMeaning("crack", 20, "crack"),
        ),
        confidence_threshold=overrides.pop("confidence_threshold", 0.8),
        **overrides,
    )


def test_confident_no_defect_passes_without_review():
    result = judge([0.9, 0.05, 0.05], rules())
    assert (result.verdict, result.label, result.review_status) == ("pass", "ok", "not_required")


def test_no_defect_exactly_at_the_threshold_passes():
    assert judge([0.8, 0.1, 0.1], rules()).verdict == "pass"


def test_low_confidence_no_defect_goes_to_review():
    result = judge([0.79, 0.11, 0.10], rules())
    assert (result.verdict, result.review_reason) == ("review", "low_confidence")


def test_defect_at_its_threshold_fails_and_is_pending():
    result = judge([0.2, 0.8, 0.0], rules())
    assert (result.verdict, result.label, result.defect_type_id) == ("fail", "missing_cap", 10)
    assert (result.review_status, result.review_reason) == ("pending", "defect")


def test_low_confidence_defect_goes_to_review():
    result = judge([0.3, 0.6, 0.1], rules())
    assert (result.verdict, result.label, result.review_reason) == (
        "review",
        "missing_cap",
        "low_confidence",
    )


def test_per_defect_threshold_fails_a_critical_defect_below_the_default():
    # A crack at 0.4 is not the top label, but cracks are rejected from 0.35.
    result = judge([0.55, 0.05, 0.40], rules(defect_thresholds={20: 0.35}))
    assert (result.verdict, result.label) == ("fail", "crack")


def test_per_defect_threshold_can_be_stricter_than_the_default():
    result = judge([0.05, 0.9, 0.05], rules(defect_thresholds={10: 0.95}))
    assert result.verdict == "review"


def test_always_reviewed_defect_is_never_an_automatic_fail():
    result = judge([0.0, 1.0, 0.0], rules(always_review=frozenset({10})))
    assert (result.verdict, result.review_reason) == ("review", "always_review")


@pytest.mark.parametrize(("sample", "expected"), [(0.04, "pending"), (0.05, "not_required")])
def test_share_of_passes_sampled_for_review(sample, expected):
    result = judge([0.99, 0.0, 0.01], rules(pass_review_rate=0.05), sample=sample)
    assert result.verdict == "pass"
    assert result.review_status == expected


def test_top_k_is_sorted_by_confidence():
    result = judge([0.1, 0.3, 0.6], rules(), k=2)
    assert [entry["label"] for entry in result.top_k] == ["crack", "missing_cap"]


def test_scores_must_match_the_labels():
    with pytest.raises(ValueError, match="2 scores for 3 labels"):
        judge([0.5, 0.5], rules())
