"""Inspections (one per frame) and the inspectors' verifications of them."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from inspection.choices import Decision, ReviewReason, ReviewStatus, Source, Verdict
from masterdata.models import DefectType, Line, Plant, Product, Shift, Station
from models_registry.models import Deployment, ModelVersion


class Inspection(models.Model):
    """One frame, the verdict on it and the model version and settings that gave it.

    ``line``, ``local_date``, ``shift`` and ``shift_date`` are fixed when the
    frame arrives (from the station and the plant's calendar at that moment),
    so reports group by plain indexed columns and history does not move when a
    station or a calendar changes later. ``final_defect_type`` and
    ``final_is_defect`` follow the latest verification (or the model's call
    until then) so the Pareto reads one table.
    """

    station = models.ForeignKey(Station, on_delete=models.PROTECT, related_name="inspections")
    line = models.ForeignKey(Line, on_delete=models.PROTECT, related_name="inspections")
    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, null=True, blank=True, related_name="inspections"
    )
    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="inspections")
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="inspections"
    )
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.SERVER)

    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    label = models.CharField(max_length=100)
    defect_type = models.ForeignKey(
        DefectType, on_delete=models.PROTECT, null=True, blank=True, related_name="inspections"
    )
    confidence = models.FloatField()
    top_k = models.JSONField(default=list)
    latency_ms = models.FloatField(help_text="Server time spent on this frame.")

    review_status = models.CharField(
        max_length=20, choices=ReviewStatus.choices, default=ReviewStatus.NOT_REQUIRED
    )
    review_reason = models.CharField(
        max_length=20, choices=ReviewReason.choices, blank=True, default=ReviewReason.NONE
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    claimed_until = models.DateTimeField(null=True, blank=True)

    # Edge frames: what the server found when it classified the frame again.
    edge_rechecked = models.BooleanField(default=False)
    server_label = models.CharField(max_length=100, blank=True)
    server_confidence = models.FloatField(null=True, blank=True)
    edge_disagreement = models.BooleanField(default=False)

    # The inspector's final word (the model's call until someone decides).
    final_defect_type = models.ForeignKey(
        DefectType, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    final_is_defect = models.BooleanField(default=False)
    verified_at = models.DateTimeField(null=True, blank=True)

    image = models.FileField(max_length=300)
    image_bytes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Size of the stored image; empty for frames stored before."
    )
    image_deleted_at = models.DateTimeField(
        null=True, blank=True, help_text="When retention removed the image (the row is kept)."
    )
    image_sha256 = models.CharField(max_length=64)
    image_content_type = models.CharField(max_length=50)
    image_width = models.PositiveIntegerField()
    image_height = models.PositiveIntegerField()

    serial = models.CharField(max_length=100, blank=True)
    lot = models.CharField(max_length=100, blank=True)
    idempotency_key = models.CharField(
        max_length=100,
        blank=True,
        default="",
        help_text="The device's key for this frame: a retry with it returns this row.",
    )
    captured_at = models.DateTimeField(help_text="When the camera took the frame (device clock).")
    received_at = models.DateTimeField(auto_now_add=True)
    local_date = models.DateField(help_text="Capture date in the plant's time zone.")
    shift = models.ForeignKey(
        Shift, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    shift_date = models.DateField(
        null=True, blank=True, help_text="Local date on which the frame's shift started."
    )

    class Meta:
        ordering = ["-captured_at", "-id"]
        constraints = [
            # A retry with the same key, on any worker or host, never makes a second row.
            models.UniqueConstraint(
                fields=["station", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="inspection_unique_idempotency_key",
            ),
        ]
        permissions = [
            ("review_inspection", "Can verify inspections in the review queue"),
            ("view_dashboard", "Can open the live dashboards"),
        ]
        indexes = [
            models.Index(fields=["line", "local_date"]),
            models.Index(fields=["station", "captured_at"]),
            models.Index(fields=["local_date"]),
            models.Index(fields=["model_version", "local_date"]),
            models.Index(fields=["shift_date", "shift"]),
            models.Index(fields=["received_at"]),
            models.Index(
                fields=["captured_at", "id"],
                condition=Q(review_status="pending"),
                name="inspection_pending_review",
            ),
            # The daily cap of "least sure" reviews counts only these rows, not the day's frames.
            models.Index(
                fields=["station", "local_date"],
                condition=Q(review_reason="low_margin"),
                name="inspection_low_margin_day",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.station.code} {self.verdict}"


class Verification(models.Model):
    """One inspector's decision on an inspection; later changes add rows, never edit."""

    inspection = models.ForeignKey(
        Inspection, on_delete=models.PROTECT, related_name="verifications"
    )
    inspector = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="verifications"
    )
    decision = models.CharField(max_length=10, choices=Decision.choices)
    defect_type = models.ForeignKey(
        DefectType,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="verifications",
        help_text="The final defect type; empty when the part is good.",
    )
    comment = models.TextField(blank=True)
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["inspection", "created_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} on #{self.inspection_id} by {self.inspector}"


class RetentionPolicy(models.Model):
    """How long a plant keeps frames' images and rows; blank days mean forever.

    "Kept" images are those of fails, reviews, inspector-verified frames and
    frames in a dataset, and the sampled share of passes. A frame in a dataset
    snapshot or waiting for review is never deleted, whatever the policy. A
    plant without a policy gets these fields' defaults (README, "Retention").
    """

    plant = models.OneToOneField(Plant, on_delete=models.CASCADE, related_name="retention_policy")
    enabled = models.BooleanField(default=True, help_text="Off: the job leaves this plant alone.")
    kept_images_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        default=365,
        help_text="Images of fails, reviews, verified frames, dataset frames and sampled "
        "passes: days kept (blank: forever).",
    )
    pass_images_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        default=30,
        help_text="Images of passes: days kept (blank: forever).",
    )
    pass_sample_percent = models.FloatField(
        default=1.0,
        help_text="Share of passes (percent, 0-100) whose image is kept beyond that, like "
        "the kept images; chosen by frame id, so every run keeps the same ones.",
    )
    rows_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        default=730,
        help_text="Rows (and their verifications): days kept (blank: forever).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "retention policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(pass_sample_percent__gte=0) & Q(pass_sample_percent__lte=100),
                name="retention_sample_percent_0_100",
            ),
        ]

    def __str__(self) -> str:
        return f"Retention of {self.plant.code}"


class RetentionDay(models.Model):
    """What retention deleted for a plant on one (UTC) day, added up over that day's runs."""

    plant = models.ForeignKey(Plant, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    images_deleted = models.PositiveBigIntegerField(default=0)
    bytes_freed = models.PositiveBigIntegerField(
        default=0, help_text="Known sizes only (frames stored before sizes were kept count 0)."
    )
    rows_deleted = models.PositiveBigIntegerField(default=0)
    file_errors = models.PositiveBigIntegerField(
        default=0, help_text="Files the storage refused to delete (the orphans sweep retries)."
    )
    runs = models.PositiveIntegerField(default=0)
    last_run_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-day", "plant"]
        constraints = [
            models.UniqueConstraint(fields=["plant", "day"], name="retention_day_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.plant_id} {self.day}"


class PlantStorage(models.Model):
    """The last measure of a plant's stored images (refreshed by the retention job).

    Summing sizes over a year of frames takes seconds, so pages read this row.
    """

    plant = models.OneToOneField(Plant, on_delete=models.CASCADE, related_name="+")
    measured_at = models.DateTimeField()
    image_bytes = models.PositiveBigIntegerField(help_text="Known sizes, plus an estimate.")
    image_files = models.PositiveBigIntegerField()
    unknown_size_files = models.PositiveBigIntegerField(
        default=0, help_text="Images stored before sizes were kept (estimated at the mean)."
    )
    daily = models.JSONField(default=list, help_text="[[local date, bytes added], ...] 30 days")

    def __str__(self) -> str:
        return f"Storage of {self.plant_id}"
