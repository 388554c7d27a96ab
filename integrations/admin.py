"""Webhooks in admin: subscriptions (pause reason, resume, test, new secret), delivery log."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html, format_html_join

from common.admin_forms import ReadOnlyAdmin, ServiceAdminMixin, add_service_errors
from integrations.models import DeliveryState, WebhookDelivery, WebhookEvent, WebhookSubscription
from integrations.webhooks import services

RECENT_DELIVERIES = 10

SECRET_PAGE = engines["django"].from_string(
    """{% extends "admin/service_page.html" %}
{% block content %}
<p>The signing secret of <strong>{{ subscription.name }}</strong>. It is shown this once:
copy it into the receiver now, which verifies each delivery's
<code>X-LineSight-Signature</code> with it (README, Webhooks).</p>
<p><input type="text" readonly size="80" value="{{ secret }}" id="webhook-secret"
  onclick="this.select()"></p>
<p><a href="{{ change_url }}">Back to {{ subscription.name }}</a></p>
{% endblock %}"""
)


class WebhookForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        choices=WebhookEvent.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookSubscription
        fields = ["name", "url", "events", "plant", "line", "active"]
        widgets = {"url": forms.URLInput(attrs={"size": 80})}

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            cleaned["events"] = services.subscription_check(
                url=cleaned["url"],
                events=cleaned.get("events"),
                plant=cleaned.get("plant"),
                line=cleaned.get("line"),
                check_address=self.instance.pk is None or "url" in self.changed_data,
            )
        except ValidationError as error:
            add_service_errors(self, error)
        return cleaned


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(ServiceAdminMixin, admin.ModelAdmin):
    form = WebhookForm
    list_display = ["name", "url", "event_list", "status", "consecutive_failures", "deliveries"]
    list_filter = ["active", ("paused_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "url"]
    list_select_related = ["plant", "line"]
    actions = ["resume", "send_test_event", "rotate_secret"]
    readonly_fields = [
        "status",
        "paused_at",
        "consecutive_failures",
        "expired_deliveries",
        "created_by",
        "created_at",
        "recent_deliveries",
    ]

    def get_queryset(self, request):
        pending = Count("deliveries", filter=Q(deliveries__state=DeliveryState.PENDING))
        return super().get_queryset(request).annotate(pending=pending)

    def get_fields(self, request, obj=None):
        editable = ["name", "url", "events", "plant", "line", "active"]
        return editable if obj is None else [*editable, *self.readonly_fields]

    @admin.display(description="events")
    def event_list(self, subscription: WebhookSubscription) -> str:
        return ", ".join(subscription.events)

    @admin.display(description="status")
    def status(self, subscription: WebhookSubscription) -> str:
        if not subscription.active:
            return "Off"
        if subscription.paused_at:
            return f"Paused: {subscription.paused_reason}"
        return "Sending"

    @admin.display(description="deliveries")
    def deliveries(self, subscription: WebhookSubscription) -> str:
        url = reverse("admin:integrations_webhookdelivery_changelist")
        pending = getattr(subscription, "pending", 0)
        return format_html(
            '<a href="{}?subscription__id__exact={}">log</a> ({} pending)',
            url,
            subscription.pk,
            pending,
        )

    @admin.display(description="recent deliveries")
    def recent_deliveries(self, subscription: WebhookSubscription) -> str:
        rows = subscription.deliveries.order_by("-id")[:RECENT_DELIVERIES]
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    d.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    d.event_type,
                    d.scope or "—",
                    d.state,
                    d.attempts,
                    d.last_status or "—",
                    d.last_error or "",
                )
                for d in rows
            ),
        )
        return format_html(
            "<table><tr><th>created</th><th>event</th><th>station</th><th>state</th>"
            "<th>attempts</th><th>status</th><th>error</th></tr>{}</table>{}",
            body,
            self.deliveries(subscription),
        )

    def save_model(self, request, obj, form, change):
        if change:
            changes = {field: form.cleaned_data[field] for field in form.changed_data}
            services.subscription_update(subscription=obj, **changes)
            return
        data = {field: form.cleaned_data[field] for field in services.EDITABLE_FIELDS}
        created = services.subscription_create(created_by=request.user, **data)
        obj.pk, obj.secret, obj.created_at = created.pk, created.secret, created.created_at
        obj._state.adding = False
        request.webhook_secret_issued = created

    def response_add(self, request, obj, post_url_continue=None):
        issued = getattr(request, "webhook_secret_issued", None)
        if issued is not None:
            return self._show_secret(request, issued, title="Webhook added: its signing secret")
        return super().response_add(request, obj, post_url_continue)

    def _show_secret(self, request: HttpRequest, subscription, *, title: str) -> HttpResponse:
        change_url = reverse(
            "admin:integrations_webhooksubscription_change", args=[subscription.pk]
        )
        response = self.service_page(
            request,
            template=SECRET_PAGE,
            title=title,
            subscription=subscription,
            secret=subscription.secret,
            change_url=change_url,
        )
        add_never_cache_headers(response)  # the only time the secret is shown
        return response

    @admin.action(description="Resume the selected webhooks (send what is pending)")
    def resume(self, request, queryset) -> None:
        for subscription in queryset:
            pending = services.subscription_resume(subscription=subscription)
            self.message_user(
                request, f"{subscription.name} resumed: {pending} pending deliveries go out now."
            )

    @admin.action(description="Send a test event to the selected webhooks")
    def send_test_event(self, request, queryset) -> None:
        for subscription in queryset:
            delivery = services.subscription_send_test(subscription=subscription)
            if delivery.state == DeliveryState.DELIVERED:
                self.message_user(
                    request,
                    f"{subscription.name}: test event delivered, {delivery.last_status} "
                    f"in {delivery.last_response_ms:.0f} ms.",
                    messages.SUCCESS,
                )
            else:
                self.message_user(
                    request,
                    f"{subscription.name}: test event failed: {delivery.last_error}",
                    messages.ERROR,
                )

    @admin.action(description="Make a new signing secret (select one webhook)")
    def rotate_secret(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one webhook.", messages.WARNING)
            return None
        subscription = queryset.get()
        services.subscription_rotate_secret(subscription=subscription)
        return self._show_secret(request, subscription, title="New signing secret")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "subscription",
        "event_type",
        "scope",
        "state",
        "attempts",
        "last_status",
        "last_response_ms",
        "last_error",
        "created_at",
        "delivered_at",
        "next_attempt_at",
    ]
    list_filter = ["state", "event_type", "subscription"]
    list_select_related = ["subscription"]
    search_fields = ["message_id", "scope", "last_error"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in WebhookDelivery._meta.fields]
