"""Admin for inspections and verifications: read-only records, searchable and filterable.

Frames come from the API and decisions from the review queue; admin shows
them (with links to the dashboard's detail page) and never edits them. The
"Dataset from verified inspections" action turns verified frames into a
dataset (inspection.to_dataset, a job).
"""

from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminDateWidget
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max, Min
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from common.admin_forms import ServiceAdminMixin, add_service_errors
from common.jobs import job_enqueue
from inspection.models import Inspection, PlantStorage, RetentionDay, RetentionPolicy, Verification
from inspection.retention import RETENTION, retention_apply, retention_policy_check
from inspection.to_dataset import FrameFilter, dataset_from_inspections_start
from masterdata.models import Line, Product, Station


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


class FromInspectionsForm(forms.Form):
    """Which verified frames go into which dataset (a new name makes a new dataset)."""

    dataset = forms.CharField(max_length=50, help_text="An existing dataset, or a new name.")
    station = forms.ModelChoiceField(queryset=Station.objects.all(), required=False)
    line = forms.ModelChoiceField(queryset=Line.objects.all(), required=False)
    product = forms.ModelChoiceField(queryset=Product.objects.all(), required=False)
    date_from = forms.DateField(label="From", required=False, widget=AdminDateWidget)
    date_to = forms.DateField(label="To", required=False, widget=AdminDateWidget)
    disagreed_only = forms.BooleanField(
        label="Only where the inspector disagreed with the model", required=False
    )


@admin.register(Inspection)
class InspectionAdmin(ServiceAdminMixin, ReadOnlyAdmin):
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
    actions = ["dataset_from_selection"]

    def has_make_dataset_permission(self, request) -> bool:
        return request.user.has_perm("models_registry.add_datasetimage")

    @admin.action(description="Dataset from verified inspections…", permissions=["make_dataset"])
    def dataset_from_selection(self, request, queryset):
        """Open the form, its filters set from the selection (one station, its dates)."""
        span = queryset.aggregate(first=Min("local_date"), last=Max("local_date"))
        stations = list(queryset.values_list("station_id", flat=True).distinct()[:2])
        query = {"date_from": span["first"] or "", "date_to": span["last"] or ""}
        if len(stations) == 1:
            query["station"] = stations[0]
        url = reverse("admin:inspection_inspection_to_dataset")
        return HttpResponseRedirect(f"{url}?{urlencode(query)}")

    def get_urls(self):
        view = self.admin_site.admin_view(self.to_dataset_view)
        return [
            path("to-dataset/", view, name="inspection_inspection_to_dataset"),
            *super().get_urls(),
        ]

    def to_dataset_view(self, request):
        """The form of "Dataset from verified inspections": a valid POST queues the job."""
        if not self.has_make_dataset_permission(request):
            raise PermissionDenied
        post = request.method == "POST"
        form = FromInspectionsForm(request.POST if post else None, initial=request.GET.dict())
        if post and form.is_valid():
            data = dict(form.cleaned_data)
            name = data.pop("dataset")
            try:
                with transaction.atomic():
                    job = dataset_from_inspections_start(
                        dataset=name, frames=FrameFilter.of(**data), requested_by=request.user
                    )
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                dataset_id = int(job.target_id)
                return HttpResponseRedirect(
                    reverse("admin:models_registry_dataset_job", args=[dataset_id, job.pk])
                )
        return self.service_page(
            request,
            template="admin/models_registry/dataset/from_inspections.html",
            title="Dataset from verified inspections",
            form=form,
            has_errors=bool(form.errors),
            media=self.media + form.media,
        )

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


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):
    """One policy per plant (a plant without one gets the defaults shown on "add")."""

    list_display = [
        "plant",
        "enabled",
        "kept_images_days",
        "pass_images_days",
        "pass_sample_percent",
        "rows_days",
        "updated_at",
    ]
    list_select_related = ["plant"]
    actions = ["dry_run", "apply_now"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)

        class CheckedForm(form):
            def clean(self):
                cleaned = super().clean()
                retention_policy_check(
                    kept_images_days=cleaned.get("kept_images_days"),
                    pass_images_days=cleaned.get("pass_images_days"),
                    rows_days=cleaned.get("rows_days"),
                )
                return cleaned

        return CheckedForm

    @admin.action(description="Dry run: what retention would remove now")
    def dry_run(self, request, queryset):
        plants = [policy.plant for policy in queryset]
        report = retention_apply(dry_run=True, plants=plants)
        for plant in report.plants:
            self.message_user(
                request,
                f"{plant.plant}: would remove {plant.passes_images} pass image(s), "
                f"{plant.kept_images} other image(s) and {plant.rows} row(s) "
                f"(~{plant.bytes_freed / 1e6:.1f} MB)."
                + (f" Skipped: {plant.skipped}." if plant.skipped else ""),
                messages.INFO,
            )

    @admin.action(description="Apply retention now (as a background job)")
    def apply_now(self, request, queryset):
        plants = [policy.plant.code for policy in queryset]
        job = job_enqueue(kind=RETENTION, requested_by=request.user, payload={"plants": plants})
        self.message_user(request, f"Retention job {job.pk} queued for {', '.join(plants)}.")


@admin.register(RetentionDay)
class RetentionDayAdmin(ReadOnlyAdmin):
    list_display = [
        "day",
        "plant",
        "images_deleted",
        "bytes_freed",
        "rows_deleted",
        "file_errors",
        "runs",
        "last_run_at",
    ]
    list_filter = ["plant"]
    list_select_related = ["plant"]
    date_hierarchy = "day"


@admin.register(PlantStorage)
class PlantStorageAdmin(ReadOnlyAdmin):
    list_display = ["plant", "image_bytes", "image_files", "unknown_size_files", "measured_at"]
    list_select_related = ["plant"]
