"""DRF authentication for line devices: ``Authorization: Token <station token>``.

A station token authenticates as a :class:`DeviceUser` with ``request.auth``
set to the station. User API tokens (DRF's own) share the ``Token`` keyword
and are handled by the next authentication class.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from masterdata.models import Station
from masterdata.tokens import hash_station_token, is_station_token


class DeviceUser:
    """The identity of a request made with a station token; holds no Django permissions."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, station: Station):
        self.station = station
        self.username = f"station:{station.code}"

    def __str__(self) -> str:
        return self.username

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return False

    def has_perms(self, perm_list: object, obj: object = None) -> bool:
        return False


class StationTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request) -> tuple[DeviceUser, Station] | None:
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header; expected 'Token <token>'."
            )
        try:
            token = parts[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed(
                "The token contains invalid characters."
            ) from None
        if not is_station_token(token):
            return None  # a user's API token: the next authentication class checks it
        station = (
            Station.objects.select_related("line__plant")
            .filter(token_hash=hash_station_token(token))
            .first()
        )
        if station is None:
            raise exceptions.AuthenticationFailed(
                "Unknown or revoked station token. Ask a quality engineer for a new one."
            )
        return DeviceUser(station), station

    def authenticate_header(self, request) -> str:
        return self.keyword


class StationTokenScheme(OpenApiAuthenticationExtension):
    """Describes station device tokens in the OpenAPI schema."""

    target_class = StationTokenAuthentication
    name = "stationToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "A station's device token: `Token lss_...`.",
        }
