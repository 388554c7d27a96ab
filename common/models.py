"""The one job model behind every kind of long work (import, evaluation, validation, export...).

A job row is what a person sees; the task engine (django-tasks) only carries
the job's id to a worker. See ``common.jobs`` for how jobs are enqueued,
claimed, run and swept.
"""

import uuid

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_STATES = (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class Job(models.Model):
    """One piece of background work of a registered kind, with its progress and outcome.

    ``attempt`` counts claims: a re-run claims the job again with a new
    attempt, so a worker presumed dead that wakes up cannot overwrite it.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=50, db_index=True)
    queue = models.CharField(max_length=50)
    state = models.CharField(
        max_length=20, choices=JobState.choices, default=JobState.QUEUED, db_index=True
    )
    progress = models.FloatField(
        default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    message = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    target_type = models.ForeignKey(
        ContentType, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    target_id = models.CharField(max_length=64, blank=True)
    target = GenericForeignKey("target_type", "target_id")

    payload = models.JSONField(default=dict, blank=True, help_text="What the run needs.")
    result = models.JSONField(default=dict, blank=True, help_text="What the run reported.")

    created = models.DateTimeField(auto_now_add=True, db_index=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    attempt = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["state", "heartbeat"]),
            models.Index(fields=["target_type", "target_id", "kind"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(progress__gte=0, progress__lte=1), name="job_progress_in_unit_interval"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} job {str(self.pk)[:8]} ({self.state})"

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_STATES


class OutboxMessage(models.Model):
    """An event for the plant's systems, written in the same transaction as what it reports.

    The MQTT sender and the webhook fan-out read it in ``id`` order and mark
    what they handed on; nothing here waits for a broker or a receiver. See
    ``common.outbox`` for the envelope and the event types.
    """

    id = models.BigAutoField(primary_key=True)
    message_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(max_length=50)
    # "plant/line/station" codes: the order key (events of a station go out in id order),
    # "" for events of no station (a finished job).
    scope = models.CharField(max_length=200, blank=True)
    payload = models.JSONField(
        encoder=DjangoJSONEncoder, help_text="The message as published (the versioned envelope)."
    )
    created_at = models.DateTimeField(db_index=True)
    mqtt_sent_at = models.DateTimeField(null=True, blank=True)
    webhooks_sent_at = models.DateTimeField(
        null=True, blank=True, help_text="When the webhook deliveries of this event were created."
    )

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["id"], name="outbox_mqtt_pending", condition=Q(mqtt_sent_at__isnull=True)
            ),
            models.Index(
                fields=["id"],
                name="outbox_webhooks_pending",
                condition=Q(webhooks_sent_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.pk} {self.scope}".strip()
