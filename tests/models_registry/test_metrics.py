"""Evaluation figures on numbers small enough to check by hand."""

import math

import numpy as np
import pytest

from models_registry.decision import FAIL, PASS, REVIEW, LineRules, decide
from models_registry.evaluation.metrics import (
    binomial_two_sided,
    calibration,
    classification_metrics,
    line_outcomes,
    mcnemar,
    suggest_thresholds,
)

LABELS = ["ok", "crack", "scratch"]


def test_accuracy_per_label_figures_and_confusion():
    # truth:     ok ok ok ok crack crack crack scratch
    # predicted: ok ok ok crack crack crack ok scratch
    truth = [0, 0, 0, 0, 1, 1, 1, 2]
    predicted = [0, 0, 0, 1, 1, 1, 0, 2]
    figures = classification_metrics(truth, predicted, LABELS)
    assert figures["accuracy"] == 6 / 8
    assert figures["confusion"]["matrix"] == [[3, 1, 0], [1, 2, 0], [0, 0, 1]]
    ok, crack, scratch = (figures["per_label"][label] for label in LABELS)
    assert (ok["precision"], ok["recall"], ok["support"]) == (3 / 4, 3 / 4, 4)
    assert ok["f1"] == pytest.approx(3 / 4)
    assert (crack["precision"], crack["recall"], crack["support"]) == (2 / 3, 2 / 3, 3)
    assert scratch["f1"] == 1.0
    assert figures["macro_f1"] == pytest.approx((3 / 4 + 2 / 3 + 1) / 3)


def test_a_label_never_seen_nor_predicted_does_not_lower_macro_f1():
    figures = classification_metrics([0, 1], [0, 1], LABELS)
    assert figures["macro_f1"] == 1.0
    assert figures["per_label"]["scratch"]["support"] == 0


def test_reliability_table_and_expected_calibration_error():
    confidences = [0.95, 0.95, 0.95, 0.95, 0.55, 0.55, 1.0]
    correct = [True, True, True, False, True, False, True]
    result = calibration(confidences, correct)
    top, middle = result["bins"][9], result["bins"][5]
    assert (top["count"], top["accuracy"]) == (5, 4 / 5)  # 1.0 falls in the last bin
    assert top["confidence"] == pytest.approx((4 * 0.95 + 1.0) / 5)
    assert (middle["count"], middle["accuracy"]) == (2, 0.5)
    assert result["bins"][0]["count"] == 0 and result["bins"][0]["accuracy"] is None
    expected = 5 / 7 * abs(0.8 - 0.96) + 2 / 7 * abs(0.5 - 0.55)
    assert result["ece"] == pytest.approx(expected)


def test_exact_binomial_tail():
    # 1 of 6 discordant pairs: P(X <= 1) = (1 + 6) / 64, two-sided doubles it.
    assert binomial_two_sided(1, 6) == pytest.approx(14 / 64)
    assert binomial_two_sided(3, 6) == 1.0
    assert binomial_two_sided(0, 0) == 1.0


def test_mcnemar_exact_for_few_discordant_images():
    champion = [True] * 10 + [True] * 5 + [False] * 1
    challenger = [True] * 10 + [False] * 5 + [True] * 1
    result = mcnemar(champion, challenger)
    assert (result["only_champion_right"], result["only_challenger_right"]) == (5, 1)
    assert result["method"] == "exact binomial"
    assert result["p_value"] == pytest.approx(14 / 64)
    assert result["significant"] is False


def test_mcnemar_chi_square_with_continuity_correction_for_many():
    champion = [True] * 30 + [False] * 10
    challenger = [False] * 30 + [True] * 10
    result = mcnemar(champion, challenger)
    statistic = (abs(30 - 10) - 1) ** 2 / 40  # 9.025
    assert result["statistic"] == pytest.approx(statistic)
    assert result["p_value"] == pytest.approx(math.erfc(math.sqrt(statistic / 2)))
    assert result["p_value"] == pytest.approx(0.00266, abs=1e-5)  # chi-square table, 1 dof
    assert result["significant"] is True


RULES = LineRules(meanings=(None, "crack", "scratch"), confidence_threshold=0.8)


def verdict_and_index(scores, rules) -> tuple[str, int]:
    decision = decide(scores, rules)
    return decision.verdict, decision.index


def test_decide_follows_the_line_rules_with_defect_types_named_by_code():
    assert verdict_and_index([0.9, 0.05, 0.05], RULES) == (PASS, 0)
    assert verdict_and_index([0.1, 0.85, 0.05], RULES) == (FAIL, 1)
    assert verdict_and_index([0.6, 0.3, 0.1], RULES) == (REVIEW, 0)  # not confident
    lenient = LineRules(meanings=RULES.meanings, defect_thresholds={"scratch": 0.2})
    assert verdict_and_index([0.7, 0.1, 0.2], lenient) == (FAIL, 2)  # above its own threshold
    always = LineRules(meanings=RULES.meanings, always_review=frozenset({"crack"}))
    assert verdict_and_index([0.05, 0.9, 0.05], always) == (REVIEW, 1)


# Six parts: three good, three cracked; scores over (ok, crack, scratch).
SCORES = np.array(
    [
        [0.95, 0.03, 0.02],  # good, pass
        [0.90, 0.05, 0.05],  # good, pass
        [0.10, 0.85, 0.05],  # good, fails: a false reject
        [0.90, 0.08, 0.02],  # crack that passes: an escape (crack score 0.08)
        [0.85, 0.15, 0.00],  # crack that passes: an escape (crack score 0.15)
        [0.05, 0.90, 0.05],  # crack, fail
    ]
)
TRUTH = [None, None, None, "crack", "crack", "crack"]


def test_line_outcomes_count_escapes_false_rejects_and_review_load():
    outcome = line_outcomes(SCORES, TRUTH, RULES)
    assert outcome["shares"] == {PASS: 4 / 6, FAIL: 2 / 6, REVIEW: 0.0}
    assert (outcome["escapes"], outcome["escape_rate"]) == (2, 2 / 3)
    assert (outcome["false_rejects"], outcome["false_reject_rate"]) == (1, 1 / 3)
    assert outcome["review_load"] == 2 / 6  # fails wait for an inspector
    sampled = LineRules(meanings=RULES.meanings, pass_review_rate=0.5)
    assert line_outcomes(SCORES, TRUTH, sampled)["review_load"] == (2 + 0.5 * 4) / 6


def test_threshold_suggestion_reaches_the_target_escape_rate_and_says_what_it_costs():
    # Zero escapes allowed: the crack threshold must fall to the lowest crack score
    # among cracks that would otherwise pass (0.08); one allowed: 0.15.
    strict = suggest_thresholds(SCORES, TRUTH, RULES, target_escape_rate=0.0)["crack"]
    assert strict["threshold"] == pytest.approx(0.08)
    assert strict["escape_rate"] == 0.0
    # At 0.08 the two passing cracks fail, and so does nothing else good: load 4/6.
    assert strict["review_load"] == pytest.approx(4 / 6)
    assert strict["meets_target_now"] is False

    one = suggest_thresholds(SCORES, TRUTH, RULES, target_escape_rate=1 / 3)["crack"]
    assert one["threshold"] == pytest.approx(0.15)
    assert one["escape_rate"] == pytest.approx(1 / 3)

    easy = suggest_thresholds(SCORES, TRUTH, RULES, target_escape_rate=0.7)
    assert (easy["crack"]["threshold"], easy["crack"]["meets_target_now"]) == (0.8, True)
    assert "scratch" not in easy  # no scratched part in the data: nothing to suggest
