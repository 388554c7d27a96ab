"""Model versions: upload (the add page), the read-only signature, preprocessing and the
label mapping (changed through services), validation and the way to deployment."""

from functools import partial

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator
from django.views.decorators.http import require_POST

from common.admin_forms import ServiceAdminMixin, add_service_errors, admin_change_url
from common.templatetags.linesight_format import bytesize, ms, seconds, sig, when
from models_registry import services
from models_registry.admin.deployment import (
    ACTIVATE_PERMISSION,
    not_ready_message,
    serving_slots,
)
from models_registry.admin.evaluation import version_evaluations
from models_registry.choices import ArtifactFormat, VersionStatus
from models_registry.forms import (
    LabelMappingForm,
    LabelMappingFormSet,
    ModelVersionChangeForm,
    VersionLabelsForm,
    VersionUploadForm,
)
from models_registry.models import LabelMapping, ModelVersion
from models_registry.validation.jobs import validation_jobs
from models_registry.validation.progress import PENDING, STEP_NAMES, planned_steps

VALIDATE_PERMISSION = "models_registry.change_modelversion"
PREPROCESSING_FIELDS = ("resize_mode", "value_scale", "color_mode")
EDITABLE_FIELDS = ("notes", *PREPROCESSING_FIELDS)


def deploy_url(version: ModelVersion) -> str:
    """The activation form with this version chosen."""
    return f"{reverse('admin:models_registry_deployment_add')}?version={version.pk}"


def validation_state(version: ModelVersion) -> dict:
    """Where the version's validation stands, step by step, for its page and its poll."""
    running = version.status in (VersionStatus.UPLOADED, VersionStatus.VALIDATING)
    job = validation_jobs(version).first()
    # An uploaded (queued) version's last job, if any, is an earlier run's.
    steps = job.result.get("steps") if job and version.status != VersionStatus.UPLOADED else None
    if not steps and running:
        keras = version.artifact_format == ArtifactFormat.KERAS
        steps = [
            {"key": key, "name": STEP_NAMES[key], "state": PENDING, "seconds": None}
            for key in planned_steps(keras=keras)
        ]
    message = {
        VersionStatus.UPLOADED: "Queued: waiting for the validation worker.",
        VersionStatus.VALIDATING: (job.message if job else "") or "Validating…",
    }.get(version.status, "")
    return {
        "status": version.status,
        "status_display": version.get_status_display(),
        "reason": version.status_reason,
        "running": running,
        "message": message,
        "took": seconds(version.validation_seconds) if version.validation_seconds else "",
        "steps": [
            {**step, "time": seconds(step["seconds"]) if step.get("seconds") is not None else ""}
            for step in steps or []
        ],
    }


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
        "status_column",
        "mapped",
        "serving_runtime",
        "latency",
        "serves",
        "uploaded",
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
            {
                "fields": (
                    "artifact_format",
                    "sha256",
                    "size_shown",
                    "uploaded_by",
                    "uploaded_at_shown",
                )
            },
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
                    "tflite_max_abs_diff_shown",
                    "warmup_latency_shown",
                    "tflite_latency_shown",
                    "validation_seconds_shown",
                    "validated_at_shown",
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

    @admin.display(description="status", ordering="status")
    def status_column(self, obj: ModelVersion) -> str:
        """The status; an invalid version's reason beside it (in full on hover)."""
        if obj.status != VersionStatus.INVALID or not obj.status_reason:
            return obj.get_status_display()
        return format_html(
            '{} <span class="version-reason" title="{}">— {}</span>',
            obj.get_status_display(),
            obj.status_reason,
            Truncator(obj.status_reason).chars(140),
        )

    @admin.display(description="latency", ordering="warmup_latency_ms")
    def latency(self, obj: ModelVersion) -> str:
        """What a frame costs as it is served: TFLite's latency when TFLite serves."""
        tflite = obj.serving_runtime == "tflite" and obj.tflite_latency_ms is not None
        return ms(obj.tflite_latency_ms if tflite else obj.warmup_latency_ms)

    @admin.display(description="uploaded", ordering="uploaded_at")
    def uploaded(self, obj: ModelVersion) -> str:
        return when(obj.uploaded_at)

    @admin.display(description="uploaded at")
    def uploaded_at_shown(self, obj: ModelVersion) -> str:
        return when(obj.uploaded_at, "seconds")

    @admin.display(description="size")
    def size_shown(self, obj: ModelVersion) -> str:
        return f"{bytesize(obj.size_bytes)} ({obj.size_bytes:,} bytes)"

    @admin.display(description="TFLite max abs diff")
    def tflite_max_abs_diff_shown(self, obj: ModelVersion) -> str:
        return sig(obj.tflite_max_abs_diff)

    @admin.display(description="warm-up latency (SavedModel)")
    def warmup_latency_shown(self, obj: ModelVersion) -> str:
        return ms(obj.warmup_latency_ms)

    @admin.display(description="TFLite latency")
    def tflite_latency_shown(self, obj: ModelVersion) -> str:
        return ms(obj.tflite_latency_ms)

    @admin.display(description="validation took")
    def validation_seconds_shown(self, obj: ModelVersion) -> str:
        return seconds(obj.validation_seconds)

    @admin.display(description="validated at")
    def validated_at_shown(self, obj: ModelVersion) -> str:
        return when(obj.validated_at, "seconds")

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
        # The form refused preprocessing changes on a serving version (version_change_check).
        data = form.cleaned_data
        services.version_change(
            version=obj,
            notes=data["notes"],
            **{field: data.get(field) for field in services.PREPROCESSING_FIELDS},
        )

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
            path(
                "<path:object_id>/validation/",
                self.admin_site.admin_view(self.validation_view),
                name="models_registry_modelversion_validation",
            ),
            path(
                "<path:object_id>/labels/",
                self.admin_site.admin_view(self.labels_view),
                name="models_registry_modelversion_labels",
            ),
            *super().get_urls(),
        ]

    def validation_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """The validation's state as JSON: the version page polls it while it runs."""
        version = get_object_or_404(ModelVersion, pk=object_id)
        if not self.has_view_permission(request, version):
            raise PermissionDenied
        return JsonResponse(validation_state(version))

    def labels_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Replace the labels (output order) and validate again, without a new upload."""
        version = get_object_or_404(ModelVersion.objects.select_related("model"), pk=object_id)
        if not self.has_validate_permission(request):
            raise PermissionDenied
        initial = {"labels": "\n".join(version.labels or [])}
        form = VersionLabelsForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            try:
                services.version_labels_replace(version=version, labels=form.cleaned_data["labels"])
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                self.log_change(request, version, "Labels replaced; validation requested.")
                self.message_user(
                    request,
                    f"{version} has new labels; validation is queued.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(admin_change_url(version))
        return self.service_page(
            request,
            template="admin/models_registry/modelversion/labels.html",
            title=f"Replace the labels of {version}",
            form=form,
            version=version,
            version_url=admin_change_url(version),
            has_errors=bool(form.errors),
        )

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
        version = queryset.select_related("model").get()
        if version.status != VersionStatus.READY:
            self.message_user(request, not_ready_message(version), messages.ERROR)
            return None
        return HttpResponseRedirect(deploy_url(version))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(
                can_validate=self.has_validate_permission(request),
                can_deploy=self.has_activate_permission(request)
                and obj.status == VersionStatus.READY,
                validate_url=reverse("admin:models_registry_modelversion_validate", args=[obj.pk]),
                validation_url=reverse(
                    "admin:models_registry_modelversion_validation", args=[obj.pk]
                ),
                labels_url=reverse("admin:models_registry_modelversion_labels", args=[obj.pk]),
                validation=validation_state(obj),
                serves_now=serving_slots(obj),
                version_evaluations=version_evaluations(request, obj),
                deploy_url=deploy_url(obj),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)
