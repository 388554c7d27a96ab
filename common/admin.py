"""Every kind of background job, listed and shown the same way (read-only); the outbox."""

from django.contrib import admin, messages
from django.utils.html import format_html

from common.jobs import job_retry, jobs_sweep
from common.models import Job, JobState, OutboxMessage


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "created",
        "kind",
        "state",
        "progress_bar",
        "message",
        "target_link",
        "requested_by",
        "finished",
    ]
    list_filter = ["state", "kind", "queue", "created"]
    list_select_related = ["requested_by", "target_type"]
    search_fields = ["id", "message", "error", "target_id"]
    date_hierarchy = "created"
    actions = ["run_again"]
    readonly_fields = [field.name for field in Job._meta.fields] + ["target_link"]
    exclude = ["target_type", "target_id"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        jobs_sweep()  # a job whose worker died is listed as failed, not running forever
        return super().changelist_view(request, extra_context)

    @admin.display(description="progress", ordering="progress")
    def progress_bar(self, job: Job) -> str:
        percent = round(job.progress * 100)
        return format_html(
            '<progress value="{}" max="100" title="{}%"></progress> {}%', percent, percent, percent
        )

    @admin.display(description="works on")
    def target_link(self, job: Job) -> str:
        if job.target_type_id is None:
            return "—"
        return f"{job.target_type.app_label}.{job.target_type.model} #{job.target_id}"

    @admin.action(description="Run the selected failed or cancelled jobs again")
    def run_again(self, request, queryset) -> None:
        again = 0
        for job in queryset.filter(state__in=[JobState.FAILED, JobState.CANCELLED]):
            job_retry(job=job)
            again += 1
        self.message_user(request, f"{again} job(s) queued again.", messages.SUCCESS)


class PendingForMqttFilter(admin.SimpleListFilter):
    title = "pending for MQTT"
    parameter_name = "mqtt_pending"

    def lookups(self, request, model_admin):
        return [("yes", "Pending (not yet acknowledged by the broker)"), ("no", "Published")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(mqtt_sent_at__isnull=self.value() == "yes")
        return queryset


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    """Read-only: an engineer sees a backlog (a broker away, a sender stopped) and its age."""

    list_display = ["id", "type", "scope", "created_at", "mqtt_sent_at", "webhooks_sent_at"]
    list_filter = [PendingForMqttFilter, "type", "created_at"]
    search_fields = ["=message_id", "scope"]
    readonly_fields = [field.name for field in OutboxMessage._meta.fields]
    show_full_result_count = False  # the outbox can be long; no COUNT(*) per page

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
