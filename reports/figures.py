"""What every reported figure means, in one place.

The page, the JSON API, the workbook and the README all take their
definitions from here, and the selectors count with the conditions below, so
a figure cannot mean one thing on the page and another in the spreadsheet.
"""

from django.db.models import Count, F, Q

from inspection.choices import ReviewReason, ReviewStatus, Verdict

# --- Conditions on an inspection row --------------------------------------

PASSED = Q(verdict=Verdict.PASS)
FAILED = Q(verdict=Verdict.FAIL)
TO_REVIEW = Q(verdict=Verdict.REVIEW)
PENDING = Q(review_status=ReviewStatus.PENDING)
VERIFIED = Q(review_status=ReviewStatus.VERIFIED)
DEFECTIVE = Q(final_is_defect=True)
CONFIRMED_DEFECT = VERIFIED & DEFECTIVE
# Passed by the model, not sent to review for any reason but the escape
# sample, and not found defective by an inspector afterwards.
# A pass sent to review only to measure escapes (the audit sample) or to learn from
# (the model was unsure between two labels) still went on down the line first time.
FIRST_PASS_GOOD = (
    PASSED
    & Q(
        review_reason__in=[
            ReviewReason.NONE,
            ReviewReason.SAMPLED_PASS,
            ReviewReason.LOW_MARGIN,
        ]
    )
    & ~DEFECTIVE
)
MODEL_CALLED_DEFECT = Q(defect_type__isnull=False)
# The model's defect type equals the inspector's final one ("no defect" included).
AGREES = Q(defect_type__isnull=True, final_defect_type__isnull=True) | Q(
    defect_type=F("final_defect_type")
)
FALSE_CALL = VERIFIED & MODEL_CALLED_DEFECT & ~DEFECTIVE
SAMPLED_PASS_REVIEWED = VERIFIED & Q(review_reason=ReviewReason.SAMPLED_PASS)
ESCAPE = SAMPLED_PASS_REVIEWED & DEFECTIVE


# The counts behind every volume and quality table: key -> condition (None: every row).
VOLUME_CONDITIONS: dict[str, Q | None] = {
    "frames": None,
    "passed": PASSED,
    "failed": FAILED,
    "to_review": TO_REVIEW,
    "pending": PENDING,
    "verified": VERIFIED,
    "defective": DEFECTIVE,
    "confirmed_defects": CONFIRMED_DEFECT,
    "first_pass_good": FIRST_PASS_GOOD,
}


def volume_counts() -> dict:
    """The counts behind every volume and quality table, as annotations on raw inspections."""
    return {
        key: Count("id", filter=condition) if condition is not None else Count("id")
        for key, condition in VOLUME_CONDITIONS.items()
    }


VOLUME_COUNT_KEYS = tuple(volume_counts())


def ratio(numerator: int, denominator: int) -> float | None:
    """A share of a count; ``None`` (shown empty) when there is nothing to divide by."""
    return numerator / denominator if denominator else None


def with_volume_rates(counts: dict) -> dict:
    """Counts plus the rates computed from them, the only place rates are computed."""
    return {
        **counts,
        "defect_rate": ratio(counts["defective"], counts["frames"]),
        "first_pass_yield": ratio(counts["first_pass_good"], counts["frames"]),
    }


# --- Definitions, as shown to people ---------------------------------------
# key: (column heading, definition). Rates are shares between 0 and 1, shown
# as percentages, and empty when their denominator is zero.

DEFINITIONS: dict[str, tuple[str, str]] = {
    "frames": ("Frames", "Inspections (camera frames) captured in the period."),
    "passed": ("Pass", "Frames the model judged good (verdict pass)."),
    "failed": ("Fail", "Frames the model judged defective above the reject threshold."),
    "to_review": ("Review", "Frames the model was unsure about (verdict review)."),
    "pending": ("Pending reviews", "Frames waiting for an inspector's decision now."),
    "verified": ("Verified", "Frames an inspector has decided."),
    "defective": (
        "Defective",
        "Frames whose final call is a defect: the inspector's latest decision, "
        "or the model's call while the frame is not decided yet.",
    ),
    "defect_rate": ("Defect rate", "Defective / Frames."),
    "confirmed_defects": ("Confirmed defects", "Frames an inspector decided are defective."),
    "first_pass_good": (
        "First-pass good",
        "Frames the model passed, not sent to review for any reason other than the "
        "escape sample, and not found defective by an inspector.",
    ),
    "first_pass_yield": ("First-pass yield", "First-pass good / Frames."),
    "pareto": (
        "Pareto",
        "Confirmed defects by the inspector's final defect type, most frequent first "
        "(ties: most severe first); share of all confirmed defects and cumulative share. "
        "'Awaiting review' counts pending frames the model put in that type.",
    ),
    "agreement": (
        "Agreement",
        "Verified frames where the model's defect type (or 'no defect') equals the "
        "inspector's final one / Verified frames.",
    ),
    "false_call_rate": (
        "False-call rate",
        "Verified frames the model called a defect and the inspector found good / "
        "Verified frames the model called a defect.",
    ),
    "escape_rate": (
        "Escape rate",
        "Sampled pass frames an inspector found defective / Sampled pass frames "
        "inspectors decided.",
    ),
    "precision": (
        "Precision",
        "Per defect type, over verified frames: model and inspector both say this type / "
        "model says this type.",
    ),
    "recall": (
        "Recall",
        "Per defect type, over verified frames: model and inspector both say this type / "
        "inspector says this type. Good frames are reviewed only when sampled, so recall "
        "is measured on the frames inspectors saw.",
    ),
    "confusion": (
        "Confusion matrix",
        "Verified frames counted by the model's defect type (rows) and the inspector's "
        "final one (columns); the diagonal is agreement.",
    ),
    "lab_accuracy": (
        "Lab accuracy",
        "The version's accuracy in its latest finished evaluation on a dataset snapshot "
        "(images whose label it predicted / images of the evaluated split).",
    ),
    "lab_macro_f1": (
        "Lab macro-F1",
        "The mean F1 over the classes of that evaluation (each class counts the same).",
    ),
    "lab_line_gap": (
        "Lab - line",
        "Lab accuracy minus agreement with inspectors on the line, in points: a large "
        "positive gap means the line sees images the dataset does not represent.",
    ),
    "decisions": (
        "Decisions",
        "Verification records an inspector made (a change is a new one); a decision its "
        "inspector undid (replaced by their next decision on the frame) is left out.",
    ),
    "decisions_per_hour": (
        "Decisions per hour",
        "Decisions / active hours, an active hour being a clock hour in which the "
        "inspector recorded at least one decision.",
    ),
    "avg_frame_to_decision_s": (
        "Frame to decision (s, mean)",
        "Mean time from the frame's capture to the decision, in seconds.",
    ),
    "avg_time_spent_s": (
        "Time on frame (s, mean)",
        "Mean time the inspector spent on the frame, as measured by the review page.",
    ),
    "correction_share": (
        "Correction share",
        "Decisions that changed the defect type ('correct') / Decisions.",
    ),
    "reject_share": (
        "Reject share",
        "Decisions that found no defect where the model saw one ('reject') / Decisions.",
    ),
    "period": (
        "Period",
        "The range selects frames by their capture date in their plant's time zone. "
        "Shift tables group frames by the date their shift started: a 22:00-06:00 "
        "shift's frames after midnight belong to the previous day's shift.",
    ),
}


def heading(key: str) -> str:
    return DEFINITIONS[key][0]
