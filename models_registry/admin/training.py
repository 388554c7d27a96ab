"""Training runs in admin: a "Train" page that starts one, and each run's page with its
progress followed live (the training API, polled) and a chart of its epochs.

Starting and cancelling call models_registry.training.services; runs are never edited.
"""

import json

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from common.admin_forms import ServiceAdminMixin, admin_change_url
from common.models import JobState
from common.templatetags.linesight_format import percent
from models_registry.admin.compare import CompareForm, comparison_context
from models_registry.training import services
from models_registry.training.compare import training_compare_start, training_comparisons
from models_registry.training.forms import TrainingForm
from models_registry.training.models import RetrainPlan, TrainingRun
from models_registry.training.retrain import check_plan_settings, retrain_start

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
        "suggested_thresholds_table",
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

    @admin.display(description="suggested per-defect thresholds")
    def suggested_thresholds_table(self, obj: TrainingRun) -> str:
        suggested = obj.suggested_thresholds or {}
        if not suggested:
            return "— (computed on the validation split when the run is done)"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td class='n'>{}</td><td class='n'>{}</td><td class='n'>{}</td>"
            "<td class='n'>{}</td></tr>",
            (
                (
                    code,
                    percent(row["threshold"]),
                    percent(row["escape_rate"]),
                    percent(row["review_load"]),
                    percent(row["false_reject_rate"]),
                )
                for code, row in sorted(suggested.get("thresholds", {}).items())
            ),
        )
        note = suggested.get("note", "")
        deploy = ""
        if obj.version_id and obj.state == JobState.DONE and suggested.get("thresholds"):
            url = reverse("admin:models_registry_deployment_add")
            deploy = format_html(
                '<p><a class="button" id="deploy-with-suggested" href="{}?version={}&amp;'
                'suggested=1">Deploy {} with these thresholds</a></p>',
                url,
                obj.version_id,
                obj.version,
            )
        return format_html(
            '<div id="suggested-thresholds"><p class="help">Target: at most {} of each defect '
            "type's validation images pass{}.</p>{}<table><thead><tr><th>defect type</th>"
            "<th>reject threshold</th><th>escape rate then</th><th>review load then</th>"
            "<th>false rejects then</th></tr></thead><tbody>{}</tbody></table>{}</div>",
            percent(suggested.get("target_escape_rate", 0.0)),
            f" ({suggested['images']} images)" if "images" in suggested else "",
            format_html('<p class="errornote">{}</p>', note) if note else "",
            rows,
            deploy,
        )

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
            path(
                "<path:object_id>/compare/",
                self.admin_site.admin_view(self.compare_view),
                name="models_registry_trainingrun_compare",
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

    def compare_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Champion/challenger: start a comparison with a station, read the latest ones."""
        run = get_object_or_404(TrainingRun.objects.select_related("version__model"), pk=object_id)
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        can_start = request.user.has_perm("models_registry.add_evaluation")
        form = CompareForm(request.POST if request.method == "POST" else None)
        if request.method == "POST":
            if not can_start:
                raise PermissionDenied
            if form.is_valid() and self.call_service(
                request,
                lambda: training_compare_start(
                    run=run, requested_by=request.user, **form.cleaned_data
                ),
                success="The comparison is queued: the snapshot evaluation and the production "
                "frames each run as a job; this page shows them when done.",
            ):
                return HttpResponseRedirect(request.path)
        comparisons = training_comparisons(run).select_related("requested_by")[:5]
        return self.service_page(
            request,
            template="admin/models_registry/trainingrun/compare.html",
            title=f"Champion/challenger: {run.version or f'training {run.pk}'}",
            run=run,
            form=form,
            can_start=can_start,
            can_deploy=request.user.has_perm("models_registry.add_deployment"),
            comparisons=[comparison_context(job, run) for job in comparisons],
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(
                compare_url=reverse("admin:models_registry_trainingrun_compare", args=[obj.pk]),
                run=obj,
                running=obj.state in RUNNING,
                percent=round((obj.job.progress if obj.job else 0) * 100),
                training_api_url=reverse("registry:training-detail", args=[obj.pk]),
                cancel_url=reverse("admin:models_registry_trainingrun_cancel", args=[obj.pk]),
                can_cancel=request.user.has_perm("models_registry.change_trainingrun"),
                history_json=obj.history,
            )
        return super().render_change_form(request, context, add, change, form_url, obj)


class RetrainPlanForm(forms.ModelForm):
    class Meta:
        model = RetrainPlan
        fields = ["model", "dataset", "station", "recipe", "settings_requested"]

    def clean_settings_requested(self) -> dict:
        try:
            return check_plan_settings(self.cleaned_data["settings_requested"] or {})
        except ValidationError as error:
            raise ValidationError(error.messages) from None


@admin.register(RetrainPlan)
class RetrainPlanAdmin(ServiceAdminMixin, admin.ModelAdmin):
    form = RetrainPlanForm
    list_display = ("model", "dataset", "station", "recipe", "last_run_link", "updated_at")
    list_select_related = ("model", "dataset", "station", "last_run")
    actions = ["retrain_selected"]

    @admin.display(description="last training")
    def last_run_link(self, obj: RetrainPlan) -> str:
        if obj.last_run_id is None:
            return "—"
        return format_html(
            '<a href="{}">training {}</a>', admin_change_url(obj.last_run), obj.last_run_id
        )

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.action(description="Retrain now: add newly verified frames, snapshot, train")
    def retrain_selected(self, request: HttpRequest, queryset) -> None:
        if not request.user.has_perm("models_registry.add_trainingrun"):
            raise PermissionDenied
        for plan in queryset.select_related("model", "dataset"):
            self.call_service(
                request,
                lambda plan=plan: retrain_start(plan=plan, requested_by=request.user),
                success=f"{plan.model}: the verified frames are being added to {plan.dataset}; "
                "a new snapshot and a training run follow (see its jobs).",
            )
