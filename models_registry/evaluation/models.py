"""Evaluations: a version (and optionally a challenger) run on a snapshot's split.

Every figure is computed from the per-image results stored with it, so a
number on the page can always be traced to the images behind it.
"""

from django.conf import settings
from django.db import models

from models_registry.datasets.models import DatasetSnapshot, SnapshotImage
from models_registry.models import ModelVersion

__all__ = ["Evaluation", "EvaluationResult"]


class EvaluationSplit(models.TextChoices):
    TEST = "test", "Test"
    VALIDATION = "validation", "Validation"
    TRAIN = "train", "Train"
    ALL = "all", "All images"


class LabelSpace(models.TextChoices):
    LABELS = "labels", "Label names (the version's labels are the dataset's)"
    MEANINGS = "meanings", "Defect types (labels compared through their mappings)"


class Evaluation(models.Model):
    """One run of a version, and optionally a challenger, on a snapshot split.

    ``metrics`` and ``challenger_metrics`` hold accuracy, macro-F1, per-label
    figures, the confusion matrix, calibration and latency; ``paired_test`` the
    McNemar test between the two; ``line`` what a deployment's thresholds
    would have made of the images; ``fast_path`` how often reduced-scale JPEG
    decoding gives the same label as the exact path.
    """

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="evaluations")
    challenger = models.ForeignKey(
        ModelVersion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="challenger_evaluations",
    )
    snapshot = models.ForeignKey(
        DatasetSnapshot, on_delete=models.PROTECT, related_name="evaluations"
    )
    split = models.CharField(
        max_length=20, choices=EvaluationSplit.choices, default=EvaluationSplit.TEST
    )
    job = models.ForeignKey(
        "common.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    label_space = models.CharField(max_length=20, choices=LabelSpace.choices)
    classes = models.JSONField(default=list, help_text="The classes figures are computed over.")
    options = models.JSONField(
        default=dict, blank=True, help_text="Line rules, target escape rate, fast-path check."
    )
    image_count = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)
    challenger_metrics = models.JSONField(default=dict, blank=True)
    paired_test = models.JSONField(default=dict, blank=True)
    line = models.JSONField(default=dict, blank=True)
    fast_path = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        against = f" vs {self.challenger}" if self.challenger_id else ""
        return f"{self.version}{against} on {self.snapshot} ({self.split})"

    @property
    def state(self) -> str:
        return self.job.state if self.job_id else "queued"


class EvaluationResult(models.Model):
    """What one version said about one snapshot image."""

    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="results")
    item = models.ForeignKey(SnapshotImage, on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    truth = models.CharField(max_length=100, help_text="The image's class in the evaluation.")
    predicted_label = models.CharField(max_length=100, help_text="The version's own label.")
    predicted = models.CharField(max_length=100, help_text="That label's class.")
    correct = models.BooleanField()
    confidence = models.FloatField()
    scores = models.JSONField(default=list, help_text="One probability per version label.")
    latency_ms = models.FloatField(help_text="Decode, preprocessing and inference.")
    fast_path_predicted = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["evaluation", "item", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["evaluation", "item", "version"], name="evaluation_result_unique"
            ),
        ]
        indexes = [models.Index(fields=["evaluation", "version", "correct"])]

    def __str__(self) -> str:
        return f"{self.item_id}: {self.predicted} ({self.confidence:.2f})"
