from django.db import models


class Verdict(models.TextChoices):
    PASS = "pass", "Pass"
    FAIL = "fail", "Fail"
    REVIEW = "review", "Review"


class Source(models.TextChoices):
    SERVER = "server", "Server"
    EDGE = "edge", "Edge"


class ReviewStatus(models.TextChoices):
    NOT_REQUIRED = "not_required", "Not required"
    PENDING = "pending", "Pending"
    VERIFIED = "verified", "Verified"


class Decision(models.TextChoices):
    CONFIRM = "confirm", "Confirm"
    REJECT = "reject", "Reject (no defect)"
    CORRECT = "correct", "Correct the defect type"


class ReviewReason(models.TextChoices):
    NONE = "", "—"
    DEFECT = "defect", "Defect above its threshold"
    LOW_CONFIDENCE = "low_confidence", "Below the confidence threshold"
    ALWAYS_REVIEW = "always_review", "Defect type always reviewed"
    SAMPLED_PASS = "sampled_pass", "Sampled pass (escape check)"
    EDGE_DISAGREEMENT = "edge_disagreement", "Edge and server disagree"
    LOW_MARGIN = "low_margin", "Model unsure between two labels"
