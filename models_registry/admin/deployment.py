"""Deployments: activation (the add page) through a service; existing ones are read-only
configurations that actions switch between."""

from functools import partial

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.html import format_html

from common.admin_forms import ServiceAdminMixin, admin_change_url
from models_registry import selectors, services
from models_registry.forms import DefectThresholdFormSet, DeploymentActivateForm
from models_registry.models import Deployment, DeploymentHistory, ModelVersion

ACTIVATE_PERMISSION = "models_registry.add_deployment"


def slot_name(row: Deployment | DeploymentHistory) -> str:
    """The slot (station, product) a deployment or history entry is about: STATION[/SKU]."""
    return f"{row.station.code}/{row.product.sku}" if row.product_id else row.station.code


def serving_slots(version: ModelVersion) -> str:
    """Where the version serves now, for a message or a column; empty when nowhere."""
    return ", ".join(selectors.slots_served_by(version=version))


@admin.register(Deployment)
class DeploymentAdmin(ServiceAdminMixin, admin.ModelAdmin):
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
        return format_html('<a href="{}">{}</a>', admin_change_url(obj.version), obj.version)

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
        return render_to_string(
            "admin/models_registry/deployment/slot_history.html",
            {
                "entries": [(entry, slot_name(entry)) for entry in entries[:50]],
                "station": obj.station,
            },
        )

    # Activation (the add view)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        def activate(form: DeploymentActivateForm, thresholds) -> Deployment:
            # The form's fields are the service's arguments, named alike.
            return services.deployment_activate(
                **form.cleaned_data, defect_thresholds=thresholds.thresholds(), by=request.user
            )

        return self.service_add_view(
            request,
            form_class=DeploymentActivateForm,
            initial={key: request.GET.get(key) for key in ("station", "product", "version")},
            formsets={"thresholds": DefectThresholdFormSet},
            create=activate,
            success=lambda deployment: (
                f"{deployment.version} now serves {slot_name(deployment)}; its next frame is "
                "judged by it."
            ),
            template="admin/models_registry/deployment/activate.html",
            title="Deploy a model version",
        )

    # Switching between configurations

    @staticmethod
    def _slots(queryset: QuerySet[Deployment]) -> dict[tuple[int, int | None], Deployment]:
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
            self._roll_back(request, deployment)

    def _roll_back(self, request: HttpRequest, deployment: Deployment) -> None:
        slot = slot_name(deployment)
        self.call_service(
            request,
            partial(
                services.deployment_rollback,
                station=deployment.station,
                product=deployment.product,
                by=request.user,
            ),
            success=lambda now_active: f"{slot} rolled back to {now_active.version}.",
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
            self.call_service(
                request,
                partial(services.deployment_reactivate, deployment=deployment, by=request.user),
                success=f"{deployment.version} serves {slot_name(deployment)} again.",
            )

    @admin.action(
        description="Deactivate (the station's frames are refused)", permissions=["activate"]
    )
    def deactivate_selected(self, request, queryset) -> None:
        for deployment in queryset.filter(is_active=True).select_related("station", "product"):
            services.deployment_deactivate(deployment=deployment, by=request.user)
            self.message_user(
                request,
                f"{slot_name(deployment)} has no active deployment now; its frames are refused.",
                messages.WARNING,
            )
