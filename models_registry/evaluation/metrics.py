"""Figures of an evaluation, from labels, predictions and scores (numpy only, no Django).

Labels are indices into one list of class names; the callers map model
labels onto dataset labels before they get here.
"""

import math
from collections.abc import Sequence

import numpy as np

from models_registry.decision import FAIL, PASS, REVIEW, LineRules, decide

CALIBRATION_BINS = 10
# Below this many discordant pairs McNemar's chi-square is a poor approximation.
EXACT_BELOW = 25
SIGNIFICANCE = 0.05


def confusion_matrix(truth: Sequence[int], predicted: Sequence[int], classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(truth, dtype=int), np.asarray(predicted, dtype=int)), 1)
    return matrix


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def classification_metrics(
    truth: Sequence[int], predicted: Sequence[int], labels: Sequence[str]
) -> dict:
    """Accuracy, per-label precision/recall/F1/support, macro-F1 and the confusion matrix.

    Macro-F1 averages over the labels that occur in the truth or the
    predictions; a label with neither says nothing about the model.
    """
    matrix = confusion_matrix(truth, predicted, len(labels))
    total = int(matrix.sum())
    per_label, f1s = {}, []
    for index, label in enumerate(labels):
        hits = int(matrix[index, index])
        support, predicted_as = int(matrix[index].sum()), int(matrix[:, index].sum())
        precision, recall = _ratio(hits, predicted_as), _ratio(hits, support)
        f1 = _ratio(2 * precision * recall, precision + recall)
        per_label[label] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support,
            "predicted": predicted_as,
        }
        if support or predicted_as:
            f1s.append(f1)
    return {
        "count": total,
        "accuracy": _ratio(int(np.trace(matrix)), total),
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
        "per_label": per_label,
        "confusion": {"labels": list(labels), "matrix": matrix.tolist()},
    }


def calibration(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = CALIBRATION_BINS
) -> dict:
    """Reliability table (equal-width confidence bins) and expected calibration error.

    A confidence of exactly 1.0 falls in the last bin; ECE weighs each bin's
    |accuracy - mean confidence| by its share of images.
    """
    confidences = np.clip(np.asarray(confidences, dtype=float), 0.0, 1.0)
    correct = np.asarray(correct, dtype=bool)
    which = np.minimum((confidences * bins).astype(int), bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        members = which == b
        count = int(members.sum())
        row = {"low": b / bins, "high": (b + 1) / bins, "count": count}
        if count:
            row["confidence"] = float(confidences[members].mean())
            row["accuracy"] = float(correct[members].mean())
            ece += count / len(confidences) * abs(row["accuracy"] - row["confidence"])
        else:
            row["confidence"] = row["accuracy"] = None
        table.append(row)
    return {"bins": table, "ece": float(ece)}


def binomial_two_sided(successes: int, trials: int) -> float:
    """Exact two-sided p-value of ``successes`` in ``trials`` fair coin flips."""
    if trials == 0:
        return 1.0
    low = min(successes, trials - successes)
    tail = sum(math.comb(trials, k) for k in range(low + 1)) / 2**trials
    return min(1.0, 2 * tail)


def mcnemar(champion_correct: Sequence[bool], challenger_correct: Sequence[bool]) -> dict:
    """McNemar's paired test on the images where exactly one version is right.

    Exact binomial below ``EXACT_BELOW`` discordant images, else chi-square
    with continuity correction (1 degree of freedom).
    """
    first = np.asarray(champion_correct, dtype=bool)
    second = np.asarray(challenger_correct, dtype=bool)
    only_champion = int(np.sum(first & ~second))
    only_challenger = int(np.sum(~first & second))
    discordant = only_champion + only_challenger
    if discordant < EXACT_BELOW:
        method, statistic = "exact binomial", None
        p_value = binomial_two_sided(only_champion, discordant)
    else:
        method = "chi-square with continuity correction"
        statistic = (abs(only_champion - only_challenger) - 1) ** 2 / discordant
        p_value = math.erfc(math.sqrt(statistic / 2))  # chi-square, 1 dof, upper tail
    return {
        "only_champion_right": only_champion,
        "only_challenger_right": only_challenger,
        "both_right": int(np.sum(first & second)),
        "both_wrong": int(np.sum(~first & ~second)),
        "method": method,
        "statistic": statistic,
        "p_value": float(p_value),
        "significant": bool(p_value < SIGNIFICANCE),
    }


def line_outcomes(scores: np.ndarray, truth: Sequence[str | None], rules: LineRules) -> dict:
    """What the line would have seen: shares of pass/fail/review, escapes, false rejects.

    ``truth`` is each image's defect code (None: a good part). An escape is a
    defective part that passed; a false reject a good part that failed. The
    review load is the share of parts an inspector looks at: every fail and
    review (they always wait for an inspector) and the sampled passes.
    """
    verdicts = {PASS: 0, FAIL: 0, REVIEW: 0}
    per_type: dict[str, dict[str, int]] = {}
    false_rejects = 0
    for row, code in zip(scores, truth, strict=True):
        verdict = decide(row, rules).verdict
        verdicts[verdict] += 1
        if code is None:
            false_rejects += verdict == FAIL
            continue
        entry = per_type.setdefault(code, {"images": 0, "escapes": 0})
        entry["images"] += 1
        entry["escapes"] += verdict == PASS
    count = len(truth)
    defects = sum(entry["images"] for entry in per_type.values())
    escapes = sum(entry["escapes"] for entry in per_type.values())
    inspected = verdicts[FAIL] + verdicts[REVIEW] + rules.pass_review_rate * verdicts[PASS]
    return {
        "count": count,
        "shares": {verdict: _ratio(n, count) for verdict, n in verdicts.items()},
        "escapes": escapes,
        "escape_rate": _ratio(escapes, defects),
        "false_rejects": false_rejects,
        "false_reject_rate": _ratio(false_rejects, count - defects),
        "review_load": _ratio(inspected, count),
        "per_defect_type": {
            code: {**entry, "escape_rate": _ratio(entry["escapes"], entry["images"])}
            for code, entry in sorted(per_type.items())
        },
    }


def _defect_scores(scores: np.ndarray, rules: LineRules, code: str) -> np.ndarray:
    columns = [i for i, meaning in enumerate(rules.meanings) if meaning == code]
    return scores[:, columns].max(axis=1)


def suggest_thresholds(
    scores: np.ndarray, truth: Sequence[str | None], rules: LineRules, target_escape_rate: float
) -> dict:
    """Per defect type, the highest reject threshold whose escape rate on this data is at
    most ``target_escape_rate`` (a lower one only adds review work), and what it costs.

    A part of type d escapes when it would pass even if d never fired (no other
    defect fires, a confident no-defect label on top) and its d score is below
    the threshold; so with k escapes allowed the threshold is the (k+1)-th
    lowest d score among those parts. The current threshold is kept when it
    already meets the target.
    """
    scores = np.asarray(scores, dtype=float)
    suggestions = {}
    for code in sorted({c for c in rules.meanings if c is not None}):
        members = [i for i, t in enumerate(truth) if t == code]
        if not members:
            continue
        blind = rules.with_threshold(code, math.inf)
        would_pass = [i for i in members if decide(scores[i], blind).verdict == PASS]
        allowed = math.floor(target_escape_rate * len(members) + 1e-9)
        current = rules.threshold_for(code)
        candidates = np.sort(_defect_scores(scores[would_pass], rules, code)) if would_pass else []
        needed = float(candidates[allowed]) if allowed < len(candidates) else 1.0
        threshold = min(current, needed)
        outcome = line_outcomes(scores, truth, rules.with_threshold(code, threshold))
        suggestions[code] = {
            "threshold": threshold,
            "current": current,
            "meets_target_now": needed >= current,
            "images": len(members),
            "escape_rate": outcome["per_defect_type"][code]["escape_rate"],
            "review_load": outcome["review_load"],
            "false_reject_rate": outcome["false_reject_rate"],
        }
    return suggestions
