"""Training runs: what a version learned from, how, and how it went."""

from django.conf import settings
from django.db import models

from masterdata.models import Station
from models_registry.datasets.models import Dataset, DatasetSnapshot
from models_registry.models import MLModel, ModelVersion

__all__ = ["Recipe", "RetrainPlan", "TrainingRun"]


class Recipe(models.TextChoices):
    DEFAULT = "default", "Compact CNN from scratch"
    FINETUNE = "finetune", "Fine-tune a base model"


class TrainingRun(models.Model):
    """One training of a version from a snapshot; its job carries state and progress.

    ``version`` is set only once the trained model passed validation and was
    registered, so a failed or cancelled run never points at a version.
    """

    snapshot = models.ForeignKey(
        DatasetSnapshot, on_delete=models.PROTECT, related_name="training_runs"
    )
    model_name = models.CharField(
        max_length=50, help_text="The model the new version joins (created if new)."
    )
    recipe = models.CharField(max_length=20, choices=Recipe.choices, default=Recipe.DEFAULT)
    settings_requested = models.JSONField(default=dict, blank=True)
    settings_chosen = models.JSONField(
        default=dict, blank=True, help_text="Every setting the run used, and why."
    )
    history = models.JSONField(default=list, blank=True, help_text="One entry per epoch.")
    job = models.ForeignKey(
        "common.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    version = models.OneToOneField(
        ModelVersion,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="training_run",
    )
    parent = models.ForeignKey(
        ModelVersion,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="trained_children",
        help_text="The base version a fine-tuning started from.",
    )
    evaluation = models.ForeignKey(
        "models_registry.Evaluation",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The new version on the snapshot's test split.",
    )
    suggested_thresholds = models.JSONField(
        default=dict,
        blank=True,
        help_text="Per defect type, the reject threshold that keeps its escapes on the "
        "validation split within the run's target escape rate.",
    )
    training_seconds = models.FloatField(null=True, blank=True)
    peak_rss_mb = models.FloatField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Training {self.pk} of {self.model_name} on {self.snapshot}"

    @property
    def state(self) -> str:
        return self.job.state if self.job_id else "queued"


class RetrainPlan(models.Model):
    """How a model is trained again once inspectors verified more frames: the dataset the
    frames join, whose frames (a station, or every one), the recipe and settings.

    "Retrain now" adds the verified frames not yet in the dataset (duplicates are
    skipped by checksum), freezes a new snapshot and starts a training run on it.
    """

    model = models.OneToOneField(MLModel, on_delete=models.CASCADE, related_name="retrain_plan")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="retrain_plans")
    station = models.ForeignKey(
        Station,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Whose verified frames join the dataset; empty: every station's.",
    )
    recipe = models.CharField(max_length=20, choices=Recipe.choices, default=Recipe.DEFAULT)
    settings_requested = models.JSONField(
        "settings",
        default=dict,
        blank=True,
        help_text='Overrides of the settings chosen from the data, e.g. {"epochs": 30}.',
    )
    last_run = models.ForeignKey(
        TrainingRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]

    def __str__(self) -> str:
        return f"Retrain {self.model} from {self.dataset}"
