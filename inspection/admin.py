"""Admin for inspections and verifications: read-only records, searchable and filterable.

Frames come from the API and decisions from the review queue; admin shows
them (with links to the dashboard's detail page) and never edits them.
"""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from inspection.models import Inspection, Verification


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class VerificationInline(admin.TabularInline):
    model = Verification
    extra = 0
    can_delete = False
    fields = ["created_at", "inspector", "decision", "defect_type", "comment", "time_spent_ms"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Inspection)
class InspectionAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "captured_at",
        "line",
        "station",
        "verdict",
        "label",
        "confidence",
        "review_status",
        "model_version",
        "dashboard_link",
    ]
    list_filter = ["verdict", "review_status", "source", "line", "station", "local_date"]
    list_select_related = ["line", "station", "model_version__model"]
    search_fields = ["=id", "serial", "lot", "label"]
    date_hierarchy = "captured_at"
    inlines = [VerificationInline]

    @admin.display(description="Dashboard")
    def dashboard_link(self, obj: Inspection) -> str:
        return format_html(
            '<a href="{}">open</a>', reverse("inspection:detail", kwargs={"pk": obj.pk})
        )


@admin.register(Verification)
class VerificationAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "inspection", "inspector", "decision", "defect_type"]
    list_filter = ["decision", "inspector"]
    list_select_related = ["inspection__station", "inspector", "defect_type"]
    search_fields = ["=inspection__id", "comment", "inspector__username"]
    date_hierarchy = "created_at"
