"""Django admin for master data: lists, archiving, spreadsheet import/export, station tokens.

Actions call masterdata.services; import/export rules live in masterdata.resources.
"""

from collections.abc import Sequence

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import path
from django.utils.cache import add_never_cache_headers
from import_export.admin import ImportExportModelAdmin
from import_export.formats.base_formats import CSV, XLSX
from import_export.results import RowResult

from common.admin_forms import ServiceAdminMixin, admin_change_url
from masterdata.forms import HideArchivedChoicesForm, MasterDataImportForm, PlantForm
from masterdata.models import DefectType, Line, Plant, Product, Shift, Station
from masterdata.resources import (
    DefectTypeResource,
    LineResource,
    PlantResource,
    ProductResource,
    StationResource,
)
from masterdata.selectors import references_blocking_delete
from masterdata.services import (
    masterdata_set_archived,
    station_token_rotate,
    station_tokens_revoke,
    station_tokens_rotate,
    stations_set_active,
)


class MasterDataAdmin(ImportExportModelAdmin):
    """Shared settings: csv/xlsx import in one all-or-nothing step; deletion refused with counts."""

    form = HideArchivedChoicesForm
    import_formats = [CSV, XLSX]
    export_formats = [CSV, XLSX]
    # Check and write the file in one transaction (rolled back on any row
    # error): no temporary copy between requests, nothing half-imported.
    skip_import_confirm = True
    show_change_form_export = False
    import_template_name = "admin/masterdata/import.html"
    import_form_class = MasterDataImportForm

    def import_action(self, request: HttpRequest, **kwargs) -> HttpResponse:
        response = super().import_action(request, **kwargs)
        context = getattr(response, "context_data", None)
        if context is not None and not context.get("fields_list"):
            # import-export lists the expected columns only on the first visit;
            # show them again next to the errors of a refused file.
            resource = self.get_import_resource_classes(request)[0]()
            columns = [field.column_name for field in resource.get_user_visible_fields()]
            context["fields_list"] = [(resource.get_display_name(), columns)]
        return response

    def has_import_permission(self, request: HttpRequest) -> bool:
        return self.has_add_permission(request) and self.has_change_permission(request)

    def has_export_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def get_deleted_objects(self, objs, request):
        # Django would list every protecting row (all of a station's
        # inspections); a count per kind says the same and stays quick.
        protected = references_blocking_delete(objs)
        if protected:
            return [], {}, set(), protected
        return super().get_deleted_objects(objs, request)


class ArchivableAdmin(MasterDataAdmin):
    """Archive/restore actions for models with an ``archived`` flag."""

    actions = ["archive", "restore"]

    @admin.action(permissions=["change"], description="Archive selected %(verbose_name_plural)s")
    def archive(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = masterdata_set_archived(objects=queryset, archived=True)
        self.message_user(
            request,
            f"Archived {count} {self._name(count)}: hidden from pickers, kept for history.",
        )

    @admin.action(permissions=["change"], description="Restore selected %(verbose_name_plural)s")
    def restore(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = masterdata_set_archived(objects=queryset, archived=False)
        self.message_user(request, f"Restored {count} {self._name(count)}.")

    def _name(self, count: int) -> str:
        return self.opts.verbose_name if count == 1 else self.opts.verbose_name_plural


class ShiftInline(admin.TabularInline):
    model = Shift
    extra = 0
    fields = ("name", "start", "end")
    verbose_name_plural = (
        "shift calendar (local time; a shift ending before it starts runs past midnight)"
    )


@admin.register(Plant)
class PlantAdmin(ArchivableAdmin):
    form = PlantForm
    resource_classes = [PlantResource]
    inlines = [ShiftInline]
    list_display = ("code", "name", "time_zone", "line_count", "archived")
    list_filter = ("archived", "time_zone")
    search_fields = ("code", "name")
    ordering = ("code",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(line_count=Count("lines"))

    @admin.display(description="lines", ordering="line_count")
    def line_count(self, obj: Plant) -> int:
        return obj.line_count


@admin.register(Line)
class LineAdmin(ArchivableAdmin):
    resource_classes = [LineResource]
    list_display = ("code", "name", "plant", "station_count", "archived")
    list_filter = ("archived", "plant")
    search_fields = ("code", "name", "plant__code", "plant__name")
    list_select_related = ("plant",)
    ordering = ("code",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(station_count=Count("stations"))

    @admin.display(description="stations", ordering="station_count")
    def station_count(self, obj: Line) -> int:
        return obj.station_count


@admin.register(Product)
class ProductAdmin(ArchivableAdmin):
    resource_classes = [ProductResource]
    list_display = ("sku", "name", "line_codes", "archived")
    list_filter = ("archived", "lines")
    search_fields = ("sku", "name")
    filter_horizontal = ("lines",)
    ordering = ("sku",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).prefetch_related("lines")

    @admin.display(description="lines")
    def line_codes(self, obj: Product) -> str:
        return ", ".join(line.code for line in obj.lines.all())


@admin.register(DefectType)
class DefectTypeAdmin(ArchivableAdmin):
    resource_classes = [DefectTypeResource]
    list_display = ("code", "name", "severity", "archived")
    list_filter = ("severity", "archived")
    search_fields = ("code", "name", "description")
    ordering = ("code",)


TOKEN_OPERATIONS = {
    "rotate": "Rotate device token",
    "revoke": "Revoke device token",
}
TOKEN_DONE = {"rotate": "Rotated", "revoke": "Revoked"}


@admin.register(Station)
class StationAdmin(ServiceAdminMixin, MasterDataAdmin):
    """Stations and their device tokens: a token is shown once, when issued, never again."""

    resource_classes = [StationResource]
    change_form_template = "admin/masterdata/station/change_form.html"
    list_display = ("code", "line", "plant", "active", "token", "token_rotated_at")
    list_filter = ("active", "line__plant", "line")
    search_fields = ("code", "description", "line__code")
    list_select_related = ("line__plant",)
    ordering = ("code",)
    readonly_fields = ("token", "token_rotated_at")
    actions = ["rotate_tokens", "revoke_tokens", "deactivate", "activate"]
    fieldsets = [
        (None, {"fields": ("code", "line", "description", "active")}),
        (
            "Device token",
            {
                "fields": ("token", "token_rotated_at"),
                "description": "The token itself is shown once, when it is issued; "
                "only its hash is stored. Rotate to issue a new one.",
            },
        ),
    ]

    def add_success_message(self, result, request: HttpRequest) -> None:
        super().add_success_message(result, request)
        if result.totals[RowResult.IMPORT_TYPE_NEW]:
            self.message_user(
                request,
                "New stations have no device token yet: select them and use "
                "“Rotate device tokens of selected stations” to issue one.",
                messages.WARNING,
            )

    def get_fieldsets(self, request: HttpRequest, obj: Station | None = None):
        return self.fieldsets if obj is not None else self.fieldsets[:1]

    @admin.display(description="plant", ordering="line__plant__code")
    def plant(self, obj: Station) -> str:
        return obj.line.plant.code

    @admin.display(description="device token")
    def token(self, obj: Station) -> str:
        return f"{obj.token_prefix}…" if obj.has_token else "none: the device is refused"

    # --- A new station gets its token at once --------------------------------

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            request.station_tokens_issued = [(obj, station_token_rotate(station=obj))]

    def response_add(self, request, obj, post_url_continue=None):
        issued = getattr(request, "station_tokens_issued", None)
        if issued:
            return self._show_tokens(request, issued, title="Station added: its device token")
        return super().response_add(request, obj, post_url_continue)

    # --- Rotate / revoke: from the change page or as list actions ------------

    def get_urls(self):
        token_view = self.admin_site.admin_view(self.token_view)
        return [
            path(
                "<path:object_id>/token/<str:operation>/",
                token_view,
                name="masterdata_station_token",
            ),
            *super().get_urls(),
        ]

    def token_view(self, request: HttpRequest, object_id: str, operation: str) -> HttpResponse:
        """GET asks to confirm, POST rotates or revokes the token of one station."""
        if operation not in TOKEN_OPERATIONS:
            raise Http404("No such token operation.")
        station = self.get_object(request, unquote(object_id))
        if station is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, station):
            raise PermissionDenied
        return self._token_operation(
            request, [station], operation, done_url=admin_change_url(station)
        )

    @admin.action(permissions=["change"], description="Rotate device tokens of selected stations")
    def rotate_tokens(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._token_operation(request, list(queryset), "rotate")

    @admin.action(permissions=["change"], description="Revoke device tokens of selected stations")
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._token_operation(request, list(queryset), "revoke")

    @admin.action(permissions=["change"], description="Deactivate selected stations")
    def deactivate(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = stations_set_active(stations=queryset, active=False)
        self.message_user(request, f"Deactivated {count} station(s): the API refuses them.")

    @admin.action(permissions=["change"], description="Activate selected stations")
    def activate(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = stations_set_active(stations=queryset, active=True)
        self.message_user(request, f"Activated {count} station(s).")

    def _token_operation(
        self,
        request: HttpRequest,
        stations: list[Station],
        operation: str,
        done_url: str | None = None,
    ) -> HttpResponse | None:
        """Ask first, then rotate or revoke the tokens of these stations."""
        return self.confirm_then_apply(
            request,
            stations,
            apply=lambda chosen: self._apply_token_operation(request, chosen, operation),
            title=f"{TOKEN_OPERATIONS[operation]}?",
            template="admin/masterdata/station/token_confirm.html",
            done_url=done_url,
            operation=operation,
        )

    def _apply_token_operation(
        self, request: HttpRequest, stations: Sequence[Station], operation: str
    ) -> HttpResponse | None:
        """Rotate (and show the new tokens once) or revoke, all stations or none."""
        if operation == "rotate":
            issued = station_tokens_rotate(stations=stations)
        else:
            station_tokens_revoke(stations=stations)
        for station in stations:
            self.log_change(request, station, f"{TOKEN_DONE[operation]} the device token.")
        if operation == "rotate":
            return self._show_tokens(request, issued, title="New device tokens")
        codes = ", ".join(station.code for station in stations)
        self.message_user(
            request,
            f"Revoked the device token of {codes}: refused by the API until a new token is issued.",
        )
        return None

    def _show_tokens(
        self, request: HttpRequest, issued: list[tuple[Station, str]], *, title: str
    ) -> HttpResponse:
        response = self.service_page(
            request,
            template="admin/masterdata/station/token_issued.html",
            title=title,
            issued=issued,
        )
        add_never_cache_headers(response)  # the only time the token exists outside the device
        return response
