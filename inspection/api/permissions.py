"""Who may post and read frames: a station's device token, or users with permissions."""

from rest_framework.permissions import BasePermission

from masterdata.models import Station


def station_of(request) -> Station | None:
    """The station a request's device token belongs to, if it came from a device."""
    return request.auth if isinstance(request.auth, Station) else None


class CanPostFrames(BasePermission):
    message = (
        "Post frames with a station's device token or a user token allowed to add inspections."
    )

    def has_permission(self, request, view) -> bool:
        if station_of(request) is not None:
            return True
        return request.user.has_perm("inspection.add_inspection")


class CanReadInspections(BasePermission):
    """Users with view permission see every frame; a device sees its own station's."""

    message = "You need permission to view inspections."

    def has_permission(self, request, view) -> bool:
        return station_of(request) is not None or request.user.has_perm(
            "inspection.view_inspection"
        )

    def has_object_permission(self, request, view, obj) -> bool:
        station = station_of(request)
        return station is None or obj.station_id == station.pk
