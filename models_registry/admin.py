"""Admin of the registry: upload, inspect, map, validate and deploy model versions.

Uploads and activations are forms of their own (not ModelForms) because the
rows are made by services; existing deployments are read-only configurations
that actions switch between.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Max
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from models_registry import selectors, services
from models_registry.choices import VersionStatus
from models_registry.forms import (
    DefectThresholdFormSet,
    DeploymentActivateForm,
    LabelMappingForm,
    LabelMappingFormSet,
    ModelVersionChangeForm,
    VersionUploadForm,
    add_service_errors,
)
from models_registry.models import (
    Deployment,
    DeploymentHistory,
    LabelMapping,
    MLModel,
    ModelVersion,
)

ACTIVATE_PERMISSION = "models_registry.add_deployment"
VALIDATE_PERMISSION = "models_registry.change_modelversion"


def _admin_url(obj, view: str = "change") -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=[obj.pk])


def _version_link(version: ModelVersion | None) -> str:
    if version is None:
        return "—"
    return format_html('<a href="{}">{}</a>', _admin_url(version), version)


def _table(headers: list[str], rows: list[tuple], empty: str) -> str:
    if not rows:
        return empty
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((c,) for c in row)),) for row in rows),
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


class ServiceFormMixin:
    """Renders a plain form page inside the admin for views that call a service."""

    def render_form_page(
        self, request: HttpRequest, *, template: str, title: str, **context
    ) -> TemplateResponse:
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": title,
                "has_view_permission": self.has_view_permission(request),
                **context,
            },
        )


# --- Models ------------------------------------------------------------------


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
        rows = [
            (
                _version_link(version),
                version.get_status_display(),
                version.status_reason or "",
                ", ".join(selectors.slots_served_by(version=version)) or "—",
                f"{version.uploaded_at:%Y-%m-%d %H:%M}",
            )
            for version in selectors.version_list(model=obj)
        ]
        upload = format_html(
            '<p><a class="button" href="{}?model={}">Upload a new version</a></p>',
            reverse("admin:models_registry_modelversion_add"),
            obj.pk,
        )
        table = _table(
            ["version", "status", "reason", "serves", "uploaded"], rows, "No versions yet."
        )
        return format_html("{}{}", table, upload)


# --- Versions ------------------------------------------------------------------


class LabelMappingInline(admin.TabularInline):
    model = LabelMapping
    form = LabelMappingForm
    formset = LabelMappingFormSet
    fields = ("index", "label", "meaning")
    readonly_fields = ("index", "label")
    extra = 0
    can_delete = False
    verbose_name = "label"
    verbose_name_plural = "labels and what they mean"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("defect_type")

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # labels come from the model; validation makes these rows


@admin.register(ModelVersion)
class ModelVersionAdmin(ServiceFormMixin, admin.ModelAdmin):
    form = ModelVersionChangeForm
    inlines = [LabelMappingInline]
    list_display = (
        "__str__",
        "status",
        "mapped",
        "serving_runtime",
        "warmup_latency_ms",
        "serves",
        "uploaded_at",
    )
    list_filter = ("status", "model", "serving_runtime")
    list_select_related = ("model", "uploaded_by")
    search_fields = ("model__name", "sha256", "notes")
    actions = ["validate_selected", "deploy_selected"]
    change_form_template = "admin/models_registry/modelversion/change_form.html"
    readonly_fields = (
        "model",
        "number",
        "status_with_reason",
        "artifact_format",
        "sha256",
        "size_bytes",
        "uploaded_by",
        "uploaded_at",
        "signature_name",
        "input_name",
        "output_name",
        "input_shape",
        "input_dtype",
        "outputs_probabilities",
        "label_list",
        "serving_runtime",
        "serving_runtime_reason",
        "tflite_max_abs_diff",
        "warmup_latency_ms",
        "tflite_latency_ms",
        "validation_seconds",
        "validated_at",
        "deployments_table",
    )
    fieldsets = (
        (None, {"fields": ("model", "number", "status_with_reason", "notes")}),
        (
            "Artifact",
            {"fields": ("artifact_format", "sha256", "size_bytes", "uploaded_by", "uploaded_at")},
        ),
        (
            "Serving signature (read by validation)",
            {
                "fields": (
                    "signature_name",
                    "input_name",
                    "output_name",
                    "input_shape",
                    "input_dtype",
                    "outputs_probabilities",
                    "label_list",
                )
            },
        ),
        (
            "Preprocessing",
            {
                "fields": ("resize_mode", "value_scale", "color_mode"),
                "description": "How a frame is turned into the model's input.",
            },
        ),
        (
            "Serving",
            {
                "fields": (
                    "serving_runtime",
                    "serving_runtime_reason",
                    "tflite_max_abs_diff",
                    "warmup_latency_ms",
                    "tflite_latency_ms",
                    "validation_seconds",
                    "validated_at",
                )
            },
        ),
        ("Deployments", {"fields": ("deployments_table",)}),
    )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # inspections and deployments point at versions; keep them all

    def has_validate_permission(self, request) -> bool:
        return request.user.has_perm(VALIDATE_PERMISSION)

    def has_activate_permission(self, request) -> bool:
        return request.user.has_perm(ACTIVATE_PERMISSION)

    # Columns and read-only fields

    @admin.display(description="status")
    def status_with_reason(self, obj: ModelVersion) -> str:
        if obj.status_reason:
            return format_html("{} — {}", obj.get_status_display(), obj.status_reason)
        return obj.get_status_display()

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("mappings")

    @admin.display(description="mapped")
    def mapped(self, obj: ModelVersion) -> str:
        rows = list(obj.mappings.all())
        return f"{sum(row.is_mapped for row in rows)}/{len(rows)}" if rows else "—"

    @admin.display(description="labels (output order)")
    def label_list(self, obj: ModelVersion) -> str:
        return ", ".join(obj.labels or []) or "—"

    @admin.display(description="input (h x w x c)")
    def input_shape(self, obj: ModelVersion) -> str:
        if obj.input_height is None:
            return "—"
        return f"{obj.input_height} x {obj.input_width} x {obj.input_channels}"

    @admin.display(description="serves")
    def serves(self, obj: ModelVersion) -> str:
        return ", ".join(selectors.slots_served_by(version=obj)) or "—"

    @admin.display(description="deployments")
    def deployments_table(self, obj: ModelVersion) -> str:
        rows = [
            (
                format_html('<a href="{}">{}</a>', _admin_url(d), d.station.code),
                d.product.sku if d.product_id else "all products",
                "active" if d.is_active else "inactive",
                f"{d.activated_at:%Y-%m-%d %H:%M}" if d.activated_at else "—",
            )
            for d in obj.deployments.select_related("station", "product").order_by("-activated_at")
        ]
        return _table(["station", "product", "state", "activated"], rows, "Never deployed.")

    # Upload (the add view)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = VersionUploadForm(request.POST, request.FILES)
            if form.is_valid():
                try:
                    version = services.version_upload(
                        model=form.cleaned_data["model"],
                        artifact=form.cleaned_data["artifact"],
                        labels=form.cleaned_data["labels"],
                        notes=form.cleaned_data["notes"],
                        uploaded_by=request.user,
                    )
                except ValidationError as error:
                    add_service_errors(form, error)
                else:
                    self.log_addition(request, version, [{"added": {}}])
                    self.message_user(
                        request,
                        f"Uploaded {version}. Validation is queued; this page shows its "
                        "result when the task worker has run it.",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(_admin_url(version))
        else:
            form = VersionUploadForm(initial={"model": request.GET.get("model")})
        return self.render_form_page(
            request,
            template="admin/models_registry/modelversion/upload.html",
            title="Upload a model version",
            form=form,
        )

    # Change: notes and preprocessing, and the label mapping inline, through services

    def _warn_if_serving(self, request, version: ModelVersion, what: str) -> None:
        slots = selectors.slots_served_by(version=version)
        if slots:
            self.message_user(
                request,
                f"{version} serves {', '.join(slots)}: the new {what} judges the next frames "
                "there.",
                messages.WARNING,
            )

    def save_model(self, request, obj: ModelVersion, form, change: bool) -> None:
        data = form.cleaned_data
        services.version_update(
            version=ModelVersion.objects.get(pk=obj.pk),
            notes=data["notes"],
            resize_mode=data["resize_mode"],
            value_scale=data["value_scale"],
            color_mode=data["color_mode"],
        )
        if {"resize_mode", "value_scale", "color_mode"} & set(form.changed_data):
            self._warn_if_serving(request, obj, "preprocessing")

    def save_formset(self, request, form, formset, change: bool) -> None:
        if not isinstance(formset, LabelMappingFormSet):
            return super().save_formset(request, form, formset, change)
        mapping = formset.mapping()
        if mapping:
            services.label_mappings_update(version=form.instance, mapping=mapping)
            self._warn_if_serving(request, form.instance, "label mapping")
        # What construct_change_message reads after a formset.save().
        formset.new_objects, formset.deleted_objects = [], []
        formset.changed_objects = [
            (f.instance, ["meaning"]) for f in formset.forms if f.instance.label in mapping
        ]

    # Validate and deploy

    def get_urls(self):
        return [
            path(
                "<path:object_id>/validate/",
                self.admin_site.admin_view(require_POST(self.validate_view)),
                name="models_registry_modelversion_validate",
            ),
            *super().get_urls(),
        ]

    def _request_validation(self, request: HttpRequest, version: ModelVersion) -> bool:
        try:
            services.version_request_validation(version=version)
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return False
        self.log_change(request, version, "Validation requested.")
        return True

    def validate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_validate_permission(request):
            raise PermissionDenied
        version = get_object_or_404(ModelVersion, pk=object_id)
        if self._request_validation(request, version):
            self.message_user(request, f"Validation of {version} is queued.", messages.SUCCESS)
        return HttpResponseRedirect(_admin_url(version))

    @admin.action(description="Validate again", permissions=["validate"])
    def validate_selected(self, request, queryset) -> None:
        queued = [
            v for v in queryset.select_related("model") if self._request_validation(request, v)
        ]
        if queued:
            names = ", ".join(str(v) for v in queued)
            self.message_user(request, f"Validation queued for {names}.", messages.SUCCESS)

    @admin.action(description="Deploy to a station…", permissions=["activate"])
    def deploy_selected(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one version to deploy.", messages.ERROR)
            return None
        version = queryset.get()
        return HttpResponseRedirect(
            f"{reverse('admin:models_registry_deployment_add')}?version={version.pk}"
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(
                can_validate=self.has_validate_permission(request),
                can_deploy=self.has_activate_permission(request)
                and obj.status == VersionStatus.READY,
                validate_url=reverse("admin:models_registry_modelversion_validate", args=[obj.pk]),
                deploy_url=f"{reverse('admin:models_registry_deployment_add')}?version={obj.pk}",
            )
        return super().render_change_form(request, context, add, change, form_url, obj)


# --- Deployments -----------------------------------------------------------------


def _slot(deployment: Deployment) -> str:
    return (
        f"{deployment.station.code}/{deployment.product.sku}"
        if deployment.product_id
        else (deployment.station.code)
    )


def _history_rows(entries) -> list[tuple]:
    def end(deployment: Deployment | None) -> str:
        if deployment is None:
            return "—"
        return format_html('<a href="{}">{}</a>', _admin_url(deployment), deployment.version)

    return [
        (
            f"{entry.at:%Y-%m-%d %H:%M:%S}",
            entry.get_action_display(),
            entry.station.code + (f"/{entry.product.sku}" if entry.product_id else ""),
            end(entry.from_deployment),
            end(entry.to_deployment),
            entry.by.get_username() if entry.by else "—",
        )
        for entry in entries
    ]


HISTORY_HEADERS = ["when", "action", "slot", "from", "to", "by"]


@admin.register(Deployment)
class DeploymentAdmin(ServiceFormMixin, admin.ModelAdmin):
    list_display = (
        "station",
        "product",
        "version",
        "confidence_threshold",
        "is_active",
        "activated_at",
        "activated_by",
        "deactivated_at",
    )
    list_filter = ("is_active", "station", "version__model")
    list_select_related = ("station", "product", "version__model", "activated_by")
    search_fields = ("station__code", "product__sku", "version__model__name")
    actions = ["rollback_selected", "reactivate_selected", "deactivate_selected"]
    fields = (
        "station",
        "product_or_all",
        "version_link",
        "confidence_threshold",
        "thresholds",
        "always_review_codes",
        "pass_review_rate",
        "edge_recheck_rate",
        "is_active",
        "activated_at",
        "activated_by",
        "deactivated_at",
        "created_at",
        "slot_history",
    )
    readonly_fields = fields

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a deployment is a configuration: activate a new one instead

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # inspections and history point at it

    def has_activate_permission(self, request) -> bool:
        return request.user.has_perm(ACTIVATE_PERMISSION)

    @admin.display(description="product")
    def product_or_all(self, obj: Deployment) -> str:
        return str(obj.product) if obj.product_id else "every product of the station's line"

    @admin.display(description="version")
    def version_link(self, obj: Deployment) -> str:
        return _version_link(obj.version)

    @admin.display(description="per-defect thresholds")
    def thresholds(self, obj: Deployment) -> str:
        rows = obj.defect_thresholds.select_related("defect_type").order_by("defect_type__code")
        return ", ".join(str(row) for row in rows) or "— (the confidence threshold for all)"

    @admin.display(description="always reviewed")
    def always_review_codes(self, obj: Deployment) -> str:
        return ", ".join(d.code for d in obj.always_review.order_by("code")) or "—"

    @admin.display(description="history of this slot")
    def slot_history(self, obj: Deployment) -> str:
        entries = selectors.deployment_history(station=obj.station).filter(product=obj.product)
        table = _table(HISTORY_HEADERS, _history_rows(entries[:50]), "No history.")
        link = format_html(
            '<p><a href="{}?station__id__exact={}">All history of {}</a></p>',
            reverse("admin:models_registry_deploymenthistory_changelist"),
            obj.station_id,
            obj.station.code,
        )
        return format_html("{}{}", table, link)

    # Activation (the add view)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = DeploymentActivateForm(request.POST)
            thresholds = DefectThresholdFormSet(request.POST, prefix="thresholds")
            if form.is_valid() and thresholds.is_valid():
                data = form.cleaned_data
                try:
                    deployment = services.deployment_activate(
                        station=data["station"],
                        product=data["product"],
                        version=data["version"],
                        confidence_threshold=data["confidence_threshold"],
                        defect_thresholds=thresholds.thresholds(),
                        always_review=data["always_review"],
                        pass_review_rate=data["pass_review_rate"],
                        edge_recheck_rate=data["edge_recheck_rate"],
                        by=request.user,
                    )
                except ValidationError as error:
                    add_service_errors(form, error)
                else:
                    self.log_addition(request, deployment, [{"added": {}}])
                    self.message_user(
                        request,
                        f"{deployment.version} now serves {_slot(deployment)}; its next frame "
                        "is judged by it.",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(_admin_url(deployment))
        else:
            form = DeploymentActivateForm(
                initial={key: request.GET.get(key) for key in ("station", "product", "version")}
            )
            thresholds = DefectThresholdFormSet(prefix="thresholds")
        return self.render_form_page(
            request,
            template="admin/models_registry/deployment/activate.html",
            title="Deploy a model version",
            form=form,
            thresholds=thresholds,
            media=self.media + form.media,
        )

    # Switching between configurations

    @staticmethod
    def _slots(queryset) -> dict[tuple[int, int | None], Deployment]:
        """One selected deployment per (station, product) slot; later ones win."""
        return {
            (d.station_id, d.product_id): d
            for d in queryset.select_related("station", "product", "version__model")
        }

    @admin.action(
        description="Roll back these stations to the previous deployment", permissions=["activate"]
    )
    def rollback_selected(self, request, queryset) -> None:
        for deployment in self._slots(queryset).values():
            try:
                now_active = services.deployment_rollback(
                    station=deployment.station, product=deployment.product, by=request.user
                )
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"{_slot(deployment)} rolled back to {now_active.version}.",
                    messages.SUCCESS,
                )

    @admin.action(description="Re-activate the selected deployments", permissions=["activate"])
    def reactivate_selected(self, request, queryset) -> None:
        selected = list(queryset.select_related("station", "product", "version__model"))
        if len(self._slots(queryset)) != len(selected):
            self.message_user(
                request,
                "Select at most one deployment per station (and product); only one can serve it.",
                messages.ERROR,
            )
            return
        for deployment in selected:
            if deployment.is_active:
                self.message_user(request, f"{deployment} is already active.", messages.INFO)
                continue
            try:
                services.deployment_reactivate(deployment=deployment, by=request.user)
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"{deployment.version} serves {_slot(deployment)} again.",
                    messages.SUCCESS,
                )

    @admin.action(
        description="Deactivate (the station's frames are refused)", permissions=["activate"]
    )
    def deactivate_selected(self, request, queryset) -> None:
        for deployment in queryset.filter(is_active=True).select_related("station", "product"):
            services.deployment_deactivate(deployment=deployment, by=request.user)
            self.message_user(
                request,
                f"{_slot(deployment)} has no active deployment now; its frames are refused.",
                messages.WARNING,
            )


@admin.register(DeploymentHistory)
class DeploymentHistoryAdmin(admin.ModelAdmin):
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

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="from")
    def from_version(self, obj: DeploymentHistory) -> str:
        return str(obj.from_deployment.version) if obj.from_deployment else "—"

    @admin.display(description="to")
    def to_version(self, obj: DeploymentHistory) -> str:
        return str(obj.to_deployment.version) if obj.to_deployment else "—"
