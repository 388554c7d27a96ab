"""Models: a name and its versions as a timeline, newest first: what served where, and when."""

from collections import defaultdict

from django.contrib import admin
from django.db.models import Count, Max
from django.template.loader import render_to_string

from models_registry import selectors
from models_registry.models import Deployment, MLModel


@admin.register(MLModel)
class MLModelAdmin(admin.ModelAdmin):
    list_display = ("name", "description", "version_count", "latest_version")
    search_fields = ("name", "description")
    readonly_fields = ("created_at", "versions_table")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(version_count=Count("versions"), latest_number=Max("versions__number"))
        )

    def get_readonly_fields(self, request, obj=None):
        # API URLs and stations' manifests name the model: it keeps its name.
        return ("name", *self.readonly_fields) if obj else self.readonly_fields

    @admin.display(description="versions", ordering="version_count")
    def version_count(self, obj: MLModel) -> int:
        return obj.version_count

    @admin.display(description="latest", ordering="latest_number")
    def latest_version(self, obj: MLModel) -> str:
        return f"v{obj.latest_number}" if obj.latest_number else "—"

    @admin.display(description="versions")
    def versions_table(self, obj: MLModel) -> str:
        if obj.pk is None:
            return "—"
        served: dict[int, list[Deployment]] = defaultdict(list)
        for deployment in (
            Deployment.objects.filter(version__model=obj, activated_at__isnull=False)
            .select_related("station", "product")
            .order_by("-activated_at")
        ):
            served[deployment.version_id].append(deployment)
        versions = [
            (version, ", ".join(selectors.slots_served_by(version=version)), served[version.pk])
            for version in selectors.version_list(model=obj)
        ]
        return render_to_string(
            "admin/models_registry/mlmodel/versions.html", {"model": obj, "versions": versions}
        )
