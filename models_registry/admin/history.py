"""Deployment history: who switched which slot to what, and when; nobody edits it."""

from django.contrib import admin

from common.admin_forms import ReadOnlyAdmin
from models_registry.models import DeploymentHistory


@admin.register(DeploymentHistory)
class DeploymentHistoryAdmin(ReadOnlyAdmin):
    list_display = ("at", "action", "station", "product", "from_version", "to_version", "by")
    list_filter = ("action", "station")
    list_select_related = (
        "station",
        "product",
        "by",
        "from_deployment__version__model",
        "to_deployment__version__model",
    )
    date_hierarchy = "at"

    @admin.display(description="from")
    def from_version(self, obj: DeploymentHistory) -> str:
        return str(obj.from_deployment.version) if obj.from_deployment else "—"

    @admin.display(description="to")
    def to_version(self, obj: DeploymentHistory) -> str:
        return str(obj.to_deployment.version) if obj.to_deployment else "—"
