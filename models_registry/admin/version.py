"""Model versions: upload (the add page), the read-only signature, preprocessing and the
label mapping (changed through services), validation and the way to deployment."""

from functools import partial

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from common.admin_forms import ServiceAdminMixin, admin_change_url
from models_registry import services
from models_registry.admin.deployment import ACTIVATE_PERMISSION, serving_slots
from models_registry.choices import VersionStatus
from models_registry.forms import (
    LabelMappingForm,
    LabelMappingFormSet,
    ModelVersionChangeForm,
    VersionUploadForm,
)
from models_registry.models import LabelMapping, ModelVersion

VALIDATE_PERMISSION = "models_registry.change_modelversion"
PREPROCESSING_FIELDS = ("resize_mode", "value_scale", "color_mode")
EDITABLE_FIELDS = ("notes", *PREPROCESSING_FIELDS)


def deploy_url(version: ModelVersion) -> str:
    """The activation form with this version chosen."""
    return f"{reverse('admin:models_registry_deployment_add')}?version={version.pk}"


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
class ModelVersionAdmin(ServiceAdminMixin, admin.ModelAdmin):
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
                "fields": PREPROCESSING_FIELDS,
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
    # Only notes and preprocessing are edited here; the rest is what upload and validation wrote.
    readonly_fields = tuple(
        field for field in flatten_fieldsets(fieldsets) if field not in EDITABLE_FIELDS
    )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # inspections and deployments point at versions; keep them all

    def has_validate_permission(self, request) -> bool:
        return request.user.has_perm(VALIDATE_PERMISSION)

    def has_activate_permission(self, request) -> bool:
        return request.user.has_perm(ACTIVATE_PERMISSION)

    # Columns and read-only fields

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("mappings")

    @admin.display(description="status")
    def status_with_reason(self, obj: ModelVersion) -> str:
        if obj.status_reason:
            return f"{obj.get_status_display()} — {obj.status_reason}"
        return obj.get_status_display()

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
        return serving_slots(obj) or "—"

    @admin.display(description="deployments")
    def deployments_table(self, obj: ModelVersion) -> str:
        deployments = obj.deployments.select_related("station", "product").order_by("-activated_at")
        return render_to_string(
            "admin/models_registry/modelversion/deployments.html", {"deployments": deployments}
        )

    # Upload (the add view)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        def upload(form: VersionUploadForm) -> ModelVersion:
            # The form's fields are the service's arguments, named alike.
            return services.version_upload(**form.cleaned_data, uploaded_by=request.user)

        return self.service_add_view(
            request,
            form_class=VersionUploadForm,
            initial={"model": request.GET.get("model")},
            create=upload,
            success=lambda version: (
                f"Uploaded {version}. Validation is queued; this page shows its result when "
                "the task worker has run it."
            ),
            template="admin/models_registry/modelversion/upload.html",
            title="Upload a model version",
        )

    # Change: notes and preprocessing, and the label mapping inline, through services

    def _warn_if_serving(self, request, version: ModelVersion, what: str) -> None:
        slots = serving_slots(version)
        if slots:
            self.message_user(
                request,
                f"{version} serves {slots}: the new {what} judges the next frames there.",
                messages.WARNING,
            )

    def save_model(self, request, obj: ModelVersion, form, change: bool) -> None:
        data = form.cleaned_data
        services.version_update(
            version=ModelVersion.objects.get(pk=obj.pk),
            notes=data["notes"],
            **{field: data[field] for field in PREPROCESSING_FIELDS},
        )
        if set(PREPROCESSING_FIELDS) & set(form.changed_data):
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
        if not self.call_service(
            request, partial(services.version_request_validation, version=version)
        ):
            return False
        self.log_change(request, version, "Validation requested.")
        return True

    def validate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_validate_permission(request):
            raise PermissionDenied
        version = get_object_or_404(ModelVersion, pk=object_id)
        if self._request_validation(request, version):
            self.message_user(request, f"Validation of {version} is queued.", messages.SUCCESS)
        return HttpResponseRedirect(admin_change_url(version))

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
        return HttpResponseRedirect(deploy_url(queryset.get()))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(
                can_validate=self.has_validate_permission(request),
                can_deploy=self.has_activate_permission(request)
                and obj.status == VersionStatus.READY,
                validate_url=reverse("admin:models_registry_modelversion_validate", args=[obj.pk]),
                deploy_url=deploy_url(obj),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)
