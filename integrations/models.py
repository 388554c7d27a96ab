"""Webhook subscriptions and their deliveries (see ``integrations.webhooks``)."""

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q

from common.outbox import (
    DEPLOYMENT_CHANGED,
    INSPECTION_JUDGED,
    INSPECTION_VERIFIED,
    JOB_FINISHED,
)
from masterdata.models import Line, Plant

# Not an outbox type: the judged frames whose verdict is fail.
INSPECTION_FAILED = "inspection.failed"
# Not an outbox type: "send a test event" from admin or the API.
WEBHOOK_TEST = "webhook.test"


class WebhookEvent(models.TextChoices):
    FRAME_JUDGED = INSPECTION_JUDGED, "Frame judged (every verdict)"
    FAIL_ONLY = INSPECTION_FAILED, "Fail only (frames judged fail)"
    DECISION_MADE = INSPECTION_VERIFIED, "Inspector decision made"
    MODEL_DEPLOYED = DEPLOYMENT_CHANGED, "Model deployed or rolled back"
    JOB_FINISHED = JOB_FINISHED, "Background job finished"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix that names what the value is


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_hex(32)


class WebhookSubscription(models.Model):
    """A receiver's URL and the events it wants, each delivery signed with ``secret``.

    The secret is kept in clear (signing needs it) but shown only once, when it
    is made or rotated. ``active`` is a person's switch; ``paused_at`` is set by
    the delivery after too many failures in a row, with the reason.
    """

    name = models.CharField(max_length=100, unique=True)
    # Not a URLField: its validator refuses a plant's one-label host names (http://mes01/...);
    # integrations.webhooks.addresses decides what may receive webhooks.
    url = models.CharField(max_length=500, help_text="http(s) address that receives the POSTs.")
    events = models.JSONField(default=list, help_text=f"Any of: {', '.join(WebhookEvent.values)}.")
    plant = models.ForeignKey(
        Plant,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Only events of this plant (jobs have none).",
    )
    line = models.ForeignKey(
        Line,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Only events of this line (jobs have none).",
    )
    secret = models.CharField(max_length=100, default=new_secret, editable=False)
    active = models.BooleanField(default=True)
    paused_at = models.DateTimeField(null=True, blank=True, editable=False)
    paused_reason = models.CharField(max_length=500, blank=True, editable=False)
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    expired_deliveries = models.PositiveBigIntegerField(
        default=0,
        editable=False,
        help_text="Deliveries given up after WEBHOOKS_PENDING_MAX_HOURS pending (never sent).",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "webhook"

    def __str__(self) -> str:
        return self.name

    @property
    def sending(self) -> bool:
        """Whether its deliveries go out now (switched on and not paused)."""
        return self.active and self.paused_at is None


class WebhookDelivery(models.Model):
    """One event for one subscription: its attempts and how the receiver answered.

    The envelope is copied here (the outbox prunes what every sender handed on).
    Deliveries of one (subscription, scope) go out in ``id`` order: a later one
    waits while an earlier one is pending. ``claimed_until`` is the lease of the
    task sending it, so two tasks never send the same chain at once.
    """

    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    message_id = models.UUIDField(help_text="The envelope's id (X-LineSight-Delivery).")
    event_type = models.CharField(max_length=50)
    scope = models.CharField(max_length=200, blank=True, help_text="plant/line/station")
    payload = models.JSONField(help_text="The envelope as posted.")
    state = models.CharField(
        max_length=20, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveIntegerField(null=True, blank=True)
    last_response_ms = models.FloatField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    last_response = models.CharField(
        max_length=1000, blank=True, help_text="The start of the receiver's last answer."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "message_id"], name="webhook_delivery_once_per_event"
            ),
        ]
        indexes = [
            models.Index(
                fields=["subscription", "scope", "id"],
                name="webhook_delivery_chain",
                condition=Q(state=DeliveryState.PENDING),
            ),
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due",
                condition=Q(state=DeliveryState.PENDING),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} to {self.subscription_id} ({self.state})"
