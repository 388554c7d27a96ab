"""Deployments: activation (the add page) through a service; existing ones are read-only
configurations that actions switch between."""

from functools import partial

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html

from common.admin_forms import ServiceAdminMixin, admin_change_url
from common.templatetags.linesight_format import percent, when
from masterdata.models import DefectType, Station
from models_registry import selectors, services
from models_registry.choices import VersionStatus
from models_registry.forms import (
    DefectThresholdFormSet,
    DeploymentActivateForm,
    deployment_initial,
)
from models_registry.models import Deployment, DeploymentHistory, ModelVersion
from models_registry.training.models import TrainingRun
from models_registry.training.thresholds import threshold_rows

ACTIVATE_PERMISSION = "models_registry.add_deployment"


def slot_name(row: Deployment | DeploymentHistory) -> str:
    """The slot (station, product) a deployment or history entry is about: STATION[/SKU]."""
    return f"{row.station.code}/{row.product.sku}" if row.product_id else row.station.code


def serving_slots(version: ModelVersion) -> str:
    """Where the version serves now, for a message or a column; empty when nowhere."""
    return ", ".join(selectors.slots_served_by(version=version))


def suggested_thresholds(version_id: str | None) -> dict[str, float]:
    """Defect code → threshold suggested by the training run of the version asked for."""
    if not (version_id or "").isdigit():
        return {}
    run = TrainingRun.objects.filter(version_id=version_id).first()
    return threshold_rows(run)


def with_suggested(rows: list[dict], suggested: dict[str, float]) -> list[dict]:
    """The thresholds formset's rows with the suggested ones put in (a suggestion replaces
    the slot's row for the same defect type; other rows are kept)."""
    types = {d.code: d.pk for d in DefectType.objects.filter(code__in=suggested, archived=False)}
    by_type = {row["defect_type"]: row["threshold"] for row in rows}
    for code, threshold in suggested.items():
        if code in types:
            by_type[types[code]] = threshold
    return [{"defect_type": pk, "threshold": value} for pk, value in by_type.items()]


def _with_query(request: HttpRequest, **extra: str) -> str:
    query = request.GET.copy()
    for key, value in extra.items():
        query[key] = value
    return query.urlencode()


def not_ready_message(version: ModelVersion) -> str:
    """Why a version cannot be deployed yet, in the words its page uses."""
    status = version.get_status_display().lower()
    if version.status == VersionStatus.INVALID:
        return (
            f"{version} is invalid, so it cannot be deployed: {version.status_reason} "
            "Fix it (e.g. replace its labels) and validate it again."
        )
    return f"{version} is {status}; it can be deployed once validation has made it ready."


@admin.register(Deployment)
class DeploymentAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = (
        "station",
        "product",
        "version",
        "confidence",
        "is_active",
        "activated",
        "activated_by",
        "deactivated",
    )
    list_filter = ("is_active", "station", "version__model")
    list_select_related = ("station", "product", "version__model", "activated_by")
    search_fields = ("station__code", "product__sku", "version__model__name")
    actions = ["rollback_selected", "reactivate_selected", "deactivate_selected"]
    fields = (
        "station",
        "product_or_all",
        "version_link",
        "confidence",
        "thresholds",
        "always_review_codes",
        "pass_review",
        "edge_recheck",
        "least_sure_review",
        "is_active",
        "activated",
        "activated_by",
        "deactivated",
        "slot_history",
    )
    readonly_fields = fields

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a deployment is a configuration: activate a new one instead

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # inspections and history point at it

    def has_activate_permission(self, request) -> bool:
        return request.user.has_perm(ACTIVATE_PERMISSION)

    change_form_template = "admin/models_registry/deployment/change_form.html"

    @admin.display(description="confidence threshold", ordering="confidence_threshold")
    def confidence(self, obj: Deployment) -> str:
        return percent(obj.confidence_threshold)

    @admin.display(description="pass review rate (audit sample)")
    def pass_review(self, obj: Deployment) -> str:
        return percent(obj.pass_review_rate)

    @admin.display(description="edge re-check rate")
    def edge_recheck(self, obj: Deployment) -> str:
        return percent(obj.edge_recheck_rate)

    @admin.display(description="least sure frames to review")
    def least_sure_review(self, obj: Deployment) -> str:
        if obj.low_margin_review <= 0:
            return "off"
        return (
            f"passes whose two best labels are within {percent(obj.low_margin_review)}, "
            f"at most {obj.low_margin_daily_cap} a day"
        )

    @admin.display(description="activated", ordering="activated_at")
    def activated(self, obj: Deployment) -> str:
        return when(obj.activated_at)

    @admin.display(description="deactivated", ordering="deactivated_at")
    def deactivated(self, obj: Deployment) -> str:
        return when(obj.deactivated_at)

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

        initial = {key: request.GET.get(key) for key in ("station", "product", "version")}
        replaced = self._replaced(initial["station"], initial["product"])
        fields, rows = deployment_initial(replaced)
        suggested = suggested_thresholds(initial["version"])
        applied = bool(suggested) and request.GET.get("suggested") == "1"
        if applied:
            rows = with_suggested(rows, suggested)
        return self.service_add_view(
            request,
            form_class=DeploymentActivateForm,
            initial={**initial, **fields},
            formsets={"thresholds": partial(DefectThresholdFormSet, initial=rows)},
            create=activate,
            success=lambda deployment: (
                f"{deployment.version} now serves {slot_name(deployment)}; its next frame is "
                "judged by it."
            ),
            template="admin/models_registry/deployment/activate.html",
            title="Deploy a model version",
            replaced=replaced,
            version_refusal=self._version_refusal(initial["version"]),
            suggested=sorted(suggested.items()),
            suggested_applied=applied,
            apply_suggested_url=f"{request.path}?{_with_query(request, suggested='1')}",
        )

    @staticmethod
    def _replaced(station_id: str | None, product_id: str | None) -> Deployment | None:
        """The deployment a new one would replace: the slot's, else the station's own."""
        if not (station_id or "").isdigit():
            return None
        active = Deployment.objects.filter(station_id=station_id, is_active=True).select_related(
            "version__model", "station"
        )
        if (product_id or "").isdigit():
            slot = active.filter(product_id=product_id).first()
            if slot is not None:
                return slot
        return active.filter(product__isnull=True).first()

    @staticmethod
    def _version_refusal(version_id: str | None) -> str:
        """Why the version asked for (from its page or list) is not offered, or ''."""
        if not (version_id or "").isdigit():
            return ""
        version = ModelVersion.objects.select_related("model").filter(pk=version_id).first()
        if version is None or version.status == VersionStatus.READY:
            return ""
        return not_ready_message(version)

    # Roll back: from a deployment's page, a station's page, or the list

    def get_urls(self):
        return [
            path(
                "station/<int:station_id>/rollback/",
                self.admin_site.admin_view(self.station_rollback_view),
                name="models_registry_deployment_station_rollback",
            ),
            path(
                "<path:object_id>/rollback/",
                self.admin_site.admin_view(self.rollback_view),
                name="models_registry_deployment_rollback",
            ),
            *super().get_urls(),
        ]

    def _confirm_rollback(
        self, request: HttpRequest, deployments: list[Deployment], done_url: str, title: str
    ) -> HttpResponse:
        if not self.has_activate_permission(request):
            raise PermissionDenied
        targets = [(d, selectors.rollback_target(current=d)) for d in deployments]

        def roll_back_all(objects) -> None:
            for deployment in objects:
                self._roll_back(request, deployment)

        return self.confirm_then_apply(
            request,
            deployments,
            apply=roll_back_all,
            title=title,
            template="admin/models_registry/deployment/rollback_confirm.html",
            done_url=done_url,
            targets=targets,
        )

    def rollback_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        deployment = get_object_or_404(
            Deployment.objects.select_related("station", "product", "version__model"),
            pk=object_id,
        )
        current = Deployment.objects.filter(
            station=deployment.station, product=deployment.product, is_active=True
        ).select_related("station", "product", "version__model")
        return self._confirm_rollback(
            request,
            list(current),
            reverse("admin:models_registry_deployment_changelist"),
            f"Roll back {slot_name(deployment)}",
        )

    def station_rollback_view(self, request: HttpRequest, station_id: int) -> HttpResponse:
        station = get_object_or_404(Station, pk=station_id)
        current = Deployment.objects.filter(station=station, is_active=True).select_related(
            "station", "product", "version__model"
        )
        return self._confirm_rollback(
            request,
            list(current),
            reverse("admin:masterdata_station_change", args=[station.pk]),
            f"Roll back {station.code}",
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and not add:
            context.update(
                can_roll_back=obj.is_active and self.has_activate_permission(request),
                rollback_url=reverse("admin:models_registry_deployment_rollback", args=[obj.pk]),
                redeploy_url=(
                    f"{reverse('admin:models_registry_deployment_add')}?station={obj.station_id}"
                    + (f"&product={obj.product_id}" if obj.product_id else "")
                ),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

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
