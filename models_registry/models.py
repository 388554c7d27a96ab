"""The model registry: models, their versions and where each version serves."""

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from masterdata.models import DefectType, Product, Station
from masterdata.validators import code_validator
from models_registry.choices import (
    ArtifactFormat,
    ColorMode,
    DeploymentAction,
    ResizeInterpolation,
    ResizeMode,
    ServingRuntime,
    ValueScale,
    VersionStatus,
)

unit_interval = [MinValueValidator(0.0), MaxValueValidator(1.0)]


def version_label(model_name: str, number: int) -> str:
    """How a version is named to a person, e.g. "bottle v3"; SQL rows pass their two columns."""
    return f"{model_name} v{number}"


def artifact_upload_to(version: "ModelVersion", filename: str) -> str:
    # A random folder: two uploads with the same name never collide and a
    # file name typed by a user never decides where bytes land.
    return f"models/{version.model.name}/{uuid.uuid4().hex}/{filename}"


class MLModel(models.Model):
    """A model a quality engineer manages, e.g. 'bottle-cap'; versions hang off it."""

    name = models.CharField(max_length=50, unique=True, validators=[code_validator])
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "model"

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    """One uploaded artifact of a model, numbered 1, 2, 3... per model.

    Validation (in a sandboxed process) fills the signature, preprocessing
    defaults, the serving artifacts and the warm-up latency, and sets the
    status to ``ready`` or ``invalid`` with the reason.
    """

    model = models.ForeignKey(MLModel, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField(editable=False)
    notes = models.TextField(blank=True)

    artifact = models.FileField(upload_to=artifact_upload_to, max_length=300)
    artifact_format = models.CharField(max_length=20, choices=ArtifactFormat.choices)
    sha256 = models.CharField(max_length=64, editable=False)
    size_bytes = models.BigIntegerField(editable=False)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, editable=False
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)

    status = models.CharField(
        max_length=20, choices=VersionStatus.choices, default=VersionStatus.UPLOADED
    )
    status_reason = models.TextField(blank=True)
    validated_at = models.DateTimeField(null=True, blank=True)

    labels = models.JSONField(default=list, blank=True, help_text="Output labels, in output order.")
    mapping_revision = models.PositiveIntegerField(
        default=0, editable=False, help_text="Bumped when label mappings change."
    )

    # Read from the serving signature by validation.
    signature_name = models.CharField(max_length=100, blank=True)
    input_name = models.CharField(max_length=200, blank=True)
    output_name = models.CharField(max_length=200, blank=True)
    input_height = models.PositiveIntegerField(null=True, blank=True)
    input_width = models.PositiveIntegerField(null=True, blank=True)
    input_channels = models.PositiveSmallIntegerField(null=True, blank=True)
    input_dtype = models.CharField(max_length=20, blank=True)
    outputs_probabilities = models.BooleanField(
        default=True, help_text="False when the model returns logits; the runtime applies softmax."
    )

    # Declared preprocessing; validation fills defaults from the signature.
    resize_mode = models.CharField(
        max_length=20, choices=ResizeMode.choices, default=ResizeMode.STRETCH
    )
    value_scale = models.CharField(
        max_length=10, choices=ValueScale.choices, default=ValueScale.UNIT
    )
    color_mode = models.CharField(max_length=10, choices=ColorMode.choices, default=ColorMode.RGB)
    resize_interpolation = models.CharField(
        max_length=20,
        choices=ResizeInterpolation.choices,
        default=ResizeInterpolation.BILINEAR,
        help_text="Choose what the model was trained with.",
    )
    jpeg_draft = models.BooleanField(
        "fast JPEG decoding",
        default=False,
        help_text=(
            "Decode JPEGs at 1/2, 1/4 or 1/8 scale when the model needs that few pixels: "
            "faster, but not the full decode most models were trained on. Switch it on "
            "only for a model trained that way, or after an evaluation shows the labels "
            "agree with the exact path on at least 99.9 % of a dataset's images."
        ),
    )

    # Serving artifacts written by validation.
    serving_savedmodel = models.FileField(max_length=300, blank=True, editable=False)
    serving_savedmodel_sha256 = models.CharField(max_length=64, blank=True, editable=False)
    tflite_artifact = models.FileField(max_length=300, blank=True, editable=False)
    tflite_sha256 = models.CharField(max_length=64, blank=True, editable=False)
    serving_runtime = models.CharField(
        max_length=20, choices=ServingRuntime.choices, blank=True, editable=False
    )
    serving_runtime_reason = models.TextField(blank=True, editable=False)
    tflite_max_abs_diff = models.FloatField(null=True, blank=True, editable=False)
    warmup_latency_ms = models.FloatField(null=True, blank=True, editable=False)
    tflite_latency_ms = models.FloatField(null=True, blank=True, editable=False)
    validation_seconds = models.FloatField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["model", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="version_number_unique"),
        ]
        indexes = [models.Index(fields=["sha256"])]

    def __str__(self) -> str:
        return version_label(self.model.name, self.number)

    @property
    def is_ready(self) -> bool:
        return self.status == VersionStatus.READY


class LabelMapping(models.Model):
    """What one output label of a version means: a defect type, or no defect.

    A label with neither is unmapped, and a version with unmapped labels
    cannot be deployed.
    """

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="mappings")
    index = models.PositiveIntegerField(help_text="Position in the model's output.")
    label = models.CharField(max_length=100)
    defect_type = models.ForeignKey(
        DefectType, on_delete=models.PROTECT, null=True, blank=True, related_name="label_mappings"
    )
    no_defect = models.BooleanField(default=False, help_text="This label means the part is good.")

    class Meta:
        ordering = ["version", "index"]
        constraints = [
            models.UniqueConstraint(fields=["version", "index"], name="mapping_unique_index"),
            models.UniqueConstraint(fields=["version", "label"], name="mapping_unique_label"),
            models.CheckConstraint(
                condition=~Q(no_defect=True, defect_type__isnull=False),
                name="mapping_defect_or_no_defect",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label} → {self.meaning}"

    @property
    def is_mapped(self) -> bool:
        return self.no_defect or self.defect_type_id is not None

    @property
    def meaning(self) -> str:
        if self.no_defect:
            return "no defect"
        if self.defect_type_id is not None:
            return self.defect_type.code
        return "unmapped"

    def clean(self) -> None:
        if self.no_defect and self.defect_type_id is not None:
            raise ValidationError("A label is either a defect type or 'no defect', not both.")


class Deployment(models.Model):
    """A version serving a station (for one product, or for all), with its thresholds.

    Rows are configurations: activating a version or changing a threshold
    activates a new row and deactivates the old one, so every inspection
    points at exactly the settings that judged it. One row per (station,
    product) slot is active at a time.
    """

    station = models.ForeignKey(Station, on_delete=models.PROTECT, related_name="deployments")
    product = models.ForeignKey(
        Product,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="deployments",
        help_text="Leave empty to serve every product of the station's line.",
    )
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="deployments")
    confidence_threshold = models.FloatField(
        default=0.8,
        validators=unit_interval,
        help_text="Below this confidence a frame goes to human review.",
    )
    always_review = models.ManyToManyField(
        DefectType,
        blank=True,
        related_name="+",
        help_text="Defect types that always go to human review.",
    )
    pass_review_rate = models.FloatField(
        default=0.0,
        validators=unit_interval,
        help_text="Share of 'pass' frames also sent to review, to measure escapes.",
    )
    edge_recheck_rate = models.FloatField(
        default=0.0,
        validators=unit_interval,
        help_text="Share of edge frames the server classifies again.",
    )
    low_margin_review = models.FloatField(
        default=0.0,
        validators=unit_interval,
        help_text="Passes whose two best labels are closer than this margin go to review "
        "(the frames the model is least sure of); 0 switches it off.",
    )
    low_margin_daily_cap = models.PositiveIntegerField(
        default=50,
        help_text="At most this many low-margin frames of the station go to review per day.",
    )
    is_active = models.BooleanField(default=False, editable=False)
    activated_at = models.DateTimeField(null=True, blank=True, editable=False)
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )
    deactivated_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["station", "-activated_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["station"],
                condition=Q(is_active=True, product__isnull=True),
                name="deployment_one_active_per_station",
            ),
            models.UniqueConstraint(
                fields=["station", "product"],
                condition=Q(is_active=True, product__isnull=False),
                name="deployment_one_active_per_station_product",
            ),
            models.CheckConstraint(
                condition=Q(confidence_threshold__gte=0, confidence_threshold__lte=1),
                name="deployment_confidence_in_unit_interval",
            ),
            models.CheckConstraint(
                condition=Q(pass_review_rate__gte=0, pass_review_rate__lte=1),
                name="deployment_pass_review_in_unit_interval",
            ),
            models.CheckConstraint(
                condition=Q(edge_recheck_rate__gte=0, edge_recheck_rate__lte=1),
                name="deployment_edge_recheck_in_unit_interval",
            ),
            models.CheckConstraint(
                condition=Q(low_margin_review__gte=0, low_margin_review__lte=1),
                name="deployment_low_margin_in_unit_interval",
            ),
        ]
        indexes = [models.Index(fields=["station", "is_active"])]

    def __str__(self) -> str:
        scope = f" / {self.product.sku}" if self.product_id else ""
        return f"{self.station.code}{scope}: {self.version}"


class DefectThreshold(models.Model):
    """A per-defect-type reject threshold that overrides the deployment's default."""

    deployment = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, related_name="defect_thresholds"
    )
    defect_type = models.ForeignKey(DefectType, on_delete=models.PROTECT, related_name="+")
    threshold = models.FloatField(validators=unit_interval)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "defect_type"], name="threshold_unique_per_defect"
            ),
            models.CheckConstraint(
                condition=Q(threshold__gte=0, threshold__lte=1),
                name="threshold_in_unit_interval",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.defect_type.code} ≥ {self.threshold:g}"


class DeploymentHistory(models.Model):
    """Who switched a station (and product) from which deployment to which, and when."""

    station = models.ForeignKey(Station, on_delete=models.PROTECT, related_name="+")
    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    action = models.CharField(max_length=20, choices=DeploymentAction.choices)
    from_deployment = models.ForeignKey(
        Deployment, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    to_deployment = models.ForeignKey(
        Deployment, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "deployment history"

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.station.code} at {self.at:%Y-%m-%d %H:%M}"


from models_registry.datasets.models import *  # noqa: E402, F403
from models_registry.evaluation.models import *  # noqa: E402, F403
from models_registry.training.models import *  # noqa: E402, F403
