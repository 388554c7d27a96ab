"""Every figure of the known plant (tests/reports/conftest.py), worked out by hand.

Counts come from the frame table in conftest's docstring; each rate is
written as the fraction it is, so a reader can check it against the table.
"""

import datetime as dt

DAY1 = dt.date(2026, 3, 28)
DAY2 = dt.date(2026, 3, 29)


def volume(frames, passed, failed, to_review, pending, verified, defective, confirmed, fpg):
    return {
        "frames": frames,
        "passed": passed,
        "failed": failed,
        "to_review": to_review,
        "pending": pending,
        "verified": verified,
        "defective": defective,
        "defect_rate": defective / frames if frames else None,
        "confirmed_defects": confirmed,
        "first_pass_good": fpg,
        "first_pass_yield": fpg / frames if frames else None,
    }


# 13 frames in range: pass f1 f5 f6 g1 g6; fail f2 f3 f7 g2 g4; review f4 g3 g5.
# Pending f7 g5. Verified f2 f3 f4 f5 f6 g2 g3 g4. Defective f2 f4 f6 f7 g2 g3 g4 g5.
# Confirmed: the verified ones of those (not f7, g5). First-pass good: f1 f5 g1 g6
# (f6 is a pass an inspector found cracked: an escape, not first-pass good).
TOTALS = volume(13, 5, 5, 3, 2, 8, 8, 6, 4)

BY_DAY = [
    # 28th: f1 f2 f3 f4 g1 g2 g3 (f1 at 00:30 CET is 27th 23:30 UTC but the 28th in Paris)
    {"date": DAY1, **volume(7, 2, 3, 2, 0, 5, 4, 4, 2)},
    # 29th: f5 f6 f7 g4 g5 g6
    {"date": DAY2, **volume(6, 3, 2, 1, 2, 3, 4, 2, 2)},
]

BY_SHIFT = [
    # f1 at 00:30 on the 28th belongs to the night shift that started on the 27th
    {
        "shift_date": dt.date(2026, 3, 27),
        "plant": "P",
        "shift": "Night",
        **volume(1, 1, 0, 0, 0, 0, 0, 0, 1),
    },
    {
        "shift_date": DAY1,
        "plant": "P",
        "shift": "Early",
        **volume(3, 1, 2, 0, 0, 2, 2, 2, 1),
    },  # f2 g1 g2
    {"shift_date": DAY1, "plant": "P", "shift": "Late", **volume(1, 0, 1, 0, 0, 1, 0, 0, 0)},  # f3
    # 22:00 CET on the 28th to 06:00 CEST on the 29th, across midnight and the DST change:
    # g3 22:30, f4 23:00, f5 01:30 CET, f6 03:30 CEST, g4 05:59 CEST
    {"shift_date": DAY1, "plant": "P", "shift": "Night", **volume(5, 2, 1, 2, 0, 5, 4, 4, 1)},
    {"shift_date": DAY2, "plant": "P", "shift": "Early", **volume(1, 0, 1, 0, 1, 0, 1, 0, 0)},  # f7
    {
        "shift_date": DAY2,
        "plant": "P",
        "shift": "Late",
        **volume(2, 1, 0, 1, 1, 0, 1, 0, 1),
    },  # g5 g6
]

BY_LINE = [
    {"plant": "P", "line": "L1", **volume(7, 3, 3, 1, 1, 5, 4, 3, 2)},  # f1..f7
    {"plant": "P", "line": "L2", **volume(6, 2, 2, 2, 1, 3, 4, 3, 2)},  # g1..g6
]

BY_STATION = [
    {"line": "L1", "station": "S1", **volume(6, 3, 2, 1, 0, 5, 3, 3, 2)},  # f1..f6
    {"line": "L1", "station": "S1B", **volume(1, 0, 1, 0, 1, 0, 1, 0, 0)},  # f7
    {"line": "L2", "station": "S2", **volume(6, 2, 2, 2, 1, 3, 4, 3, 2)},  # g1..g6
]

BY_PRODUCT = [
    {"product": "A", "product_name": "Yogurt 125 g", **volume(5, 3, 1, 1, 0, 4, 3, 3, 2)},
    {"product": "B", "product_name": "Yogurt 500 g", **volume(7, 2, 3, 2, 1, 4, 4, 3, 2)},
    {"product": None, "product_name": None, **volume(1, 0, 1, 0, 1, 0, 1, 0, 0)},  # f7
]

VOLUME = {
    "day": BY_DAY,
    "shift": BY_SHIFT,
    "line": BY_LINE,
    "station": BY_STATION,
    "product": BY_PRODUCT,
}

# Confirmed: crack f2 f6 g2 g4 = 4, scratch f4 g3 = 2; pending: crack f7, scratch g5.
PARETO = [
    {
        "defect_type": "crack",
        "name": "Crack",
        "severity": "critical",
        "confirmed": 4,
        "share": 4 / 6,
        "cumulative_share": 4 / 6,
        "awaiting_review": 1,
    },
    {
        "defect_type": "scratch",
        "name": "Scratch",
        "severity": "minor",
        "confirmed": 2,
        "share": 2 / 6,
        "cumulative_share": 1.0,
        "awaiting_review": 1,
    },
]

# Matrices: rows model (no defect, crack, scratch), columns inspector (same order).
MODEL_VERSIONS = [
    {
        "model_version": "cap v1",
        "frames": 7,
        "verified": 5,  # f2 f3 f4 f5 f6
        "agreed": 2,  # f2 crack=crack, f5 none=none
        "agreement": 2 / 5,
        "defect_calls_verified": 3,  # f2 f3 f4
        "false_calls": 1,  # f3 scratch rejected
        "false_call_rate": 1 / 3,
        "sampled_passes_verified": 2,  # f5 f6
        "escapes": 1,  # f6
        "escape_rate": 1 / 2,
        "labels": [None, "crack", "scratch"],
        "matrix": [[1, 1, 0], [0, 1, 1], [1, 0, 0]],  # f5; f6 | f2; f4 | f3
        "per_defect_type": [
            {
                "defect_type": "crack",
                "model_calls": 2,
                "inspector_calls": 2,
                "both": 1,
                "precision": 1 / 2,
                "recall": 1 / 2,
            },
            {
                "defect_type": "scratch",
                "model_calls": 1,
                "inspector_calls": 1,
                "both": 0,
                "precision": 0.0,
                "recall": 0.0,
            },
        ],
    },
    {
        "model_version": "cap v2",
        "frames": 6,
        "verified": 3,  # g2 g3 g4
        "agreed": 1,  # g2
        "agreement": 1 / 3,
        "defect_calls_verified": 2,  # g2 g4
        "false_calls": 0,
        "false_call_rate": 0.0,
        "sampled_passes_verified": 0,
        "escapes": 0,
        "escape_rate": None,
        "labels": [None, "crack", "scratch"],
        "matrix": [[0, 0, 1], [0, 1, 0], [0, 1, 0]],  # g3 | g2 | g4
        "per_defect_type": [
            {
                "defect_type": "crack",
                "model_calls": 1,
                "inspector_calls": 2,
                "both": 1,
                "precision": 1.0,
                "recall": 1 / 2,
            },
            {
                "defect_type": "scratch",
                "model_calls": 1,
                "inspector_calls": 1,
                "both": 0,
                "precision": 0.0,
                "recall": 0.0,
            },
        ],
    },
]

AGREEMENT = [
    {"model_version": "cap v1", "date": DAY1, "verified": 3, "agreed": 1, "agreement": 1 / 3},
    {"model_version": "cap v1", "date": DAY2, "verified": 2, "agreed": 1, "agreement": 1 / 2},
    {"model_version": "cap v2", "date": DAY1, "verified": 2, "agreed": 1, "agreement": 1 / 2},
    {"model_version": "cap v2", "date": DAY2, "verified": 1, "agreed": 0, "agreement": 0.0},
]

# insp1: f2 confirm 09:45 (+9900 s, 4 s), f3 reject 15:05 (+300 s, 6 s), f5 confirm 01:50
# (+1200 s, 2 s), g2 correct 09:40 (+600 s, 8 s), g3 correct 22:40 (+600 s, 5 s);
# hours 09 (twice), 15, 01, 22 = 4. x2's decision is outside the range.
# insp2: f4 correct 23:30 (+1800 s, 3 s), f6 correct 06:10 CEST (+9600 s, 7 s), g2 confirm
# 10:30 (+3600 s, not measured), g4 correct 06:29 CEST (+1800 s, 2 s); hours 23, 06 (twice), 10.
INSPECTORS = [
    {
        "inspector": "insp1",
        "decisions": 5,
        "confirms": 2,
        "rejects": 1,
        "corrections": 2,
        "active_hours": 4,
        "decisions_per_hour": 5 / 4,
        "avg_frame_to_decision_s": (9900 + 300 + 1200 + 600 + 600) / 5,
        "avg_time_spent_s": (4 + 6 + 2 + 8 + 5) / 5,
        "correction_share": 2 / 5,
        "reject_share": 1 / 5,
    },
    {
        "inspector": "insp2",
        "decisions": 4,
        "confirms": 1,
        "rejects": 0,
        "corrections": 3,
        "active_hours": 3,
        "decisions_per_hour": 4 / 3,
        "avg_frame_to_decision_s": (1800 + 9600 + 3600 + 1800) / 4,
        "avg_time_spent_s": (3 + 7 + 2) / 3,
        "correction_share": 3 / 4,
        "reject_share": 0.0,
    },
]

VERIFICATION_LOG_SIZE = 9
