"""Training runs in admin: a "Train" page that starts one, and each run's page with its
progress followed live (the training API, polled) and a chart of its epochs.

Starting and cancelling call models_registry.training.services; runs are never edited.
"""

import json

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from common.admin_forms import ServiceAdminMixin, admin_change_url
from common.models import JobState
from models_registry.training import services
from models_registry.training.forms import TrainingForm
from models_registry.training.models import TrainingRun

RUNNING = {JobState.QUEUED, JobState.RUNNING}


@admin.register(TrainingRun)
class TrainingRunAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = ("id", "model_name", "snapshot", "recipe", "state", "version_link", "created_at")
    list_filter = ("recipe", "job__state")
    list_select_related = ("snapshot__dataset", "job", "version__model")
    search_fields = ("model_name", "snapshot__dataset__name")
    fields = (
        "snapshot",
        "model_name",
        "recipe",
        "version_link",
        "evaluation_link",
        "parent",
        "training_seconds",
        "peak_rss_mb",
        "chosen_settings",
        "settings_requested",
        "requested_by",
        "created_at",
    )
    readonly_fields = fields
    change_form_template = "admin/models_registry/trainingrun/change_form.html"

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # a run is what happened; it is started and cancelled, never edited

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # versions keep their provenance

    @admin.display(description="state", ordering="job__state")
    def state(self, obj: TrainingRun) -> str:
        return obj.state

    @admin.display(description="version")
    def version_link(self, obj: TrainingRun) -> str:
        if obj.version is None or obj.state != JobState.DONE:
            return "—"
        return format_html('<a href="{}">{}</a>', admin_change_url(obj.version), obj.version)

    @admin.display(description="evaluation on the test split")
    def evaluation_link(self, obj: TrainingRun) -> str:
        if obj.evaluation_id is None:
            return "—"
        url = reverse("registry:evaluation-detail", args=[obj.evaluation_id])
        return format_html('<a href="{}">evaluation {}</a>', url, obj.evaluation_id)

    @admin.display(description="settings chosen")
    def chosen_settings(self, obj: TrainingRun) -> str:
        why = obj.settings_chosen.get("why", {})
        rows = format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td><td class='help'>{}</td></tr>",
            (
                (name, json.dumps(value), why.get(name, ""))
                for name, value in obj.settings_chosen.items()
                if name not in ("why", "labels", "overridden")
            ),
        )
        return format_html("<table>{}</table>", rows)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/cancel/",
                self.admin_site.admin_view(require_POST(self.cancel_view)),
                name="models_registry_trainingrun_cancel",
            ),
            *super().get_urls(),
        ]

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        return self.service_add_view(
            request,
            form_class=TrainingForm,
            create=lambda form: services.training_start(
                snapshot=form.cleaned_data["snapshot"],
                model_name=form.cleaned_data["model"],
                recipe=form.cleaned_data["recipe"],
                settings=form.cleaned_data["settings"],
                base=form.cleaned_data["base"],
                requested_by=request.user,
            ),
            success=lambda run: f"Training {run.pk} is queued; this page follows it.",
            title="Train a model version",
        )

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not request.user.has_perm("models_registry.change_trainingrun"):
            raise PermissionDenied
        run = get_object_or_404(TrainingRun, pk=object_id)
        if self.call_service(
            request,
            lambda: services.training_cancel(run=run),
            success=f"Training {run.pk} is cancelled.",
        ):
            self.log_change(request, run, "Cancelled.")
        return HttpResponseRedirect(admin_change_url(run))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(
                run=obj,
                running=obj.state in RUNNING,
                percent=round((obj.job.progress if obj.job else 0) * 100),
                training_api_url=reverse("registry:training-detail", args=[obj.pk]),
                cancel_url=reverse("admin:models_registry_trainingrun_cancel", args=[obj.pk]),
                can_cancel=request.user.has_perm("models_registry.change_trainingrun"),
                history_json=obj.history,
            )
        return super().render_change_form(request, context, add, change, form_url, obj)
