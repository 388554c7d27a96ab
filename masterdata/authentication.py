"""DRF authentication for line devices: ``Authorization: Token <station token>``.

A station token authenticates as a :class:`DeviceUser` with ``request.auth``
set to the station. User API tokens (DRF's own) share the ``Token`` keyword
and are handled by the next authentication class.
"""

from functools import cache

from django.db import connection
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from masterdata.models import Line, Plant, Station
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
        station = station_for_token_hash(hash_station_token(token))
        if station is None:
            raise exceptions.AuthenticationFailed(
                "Unknown or revoked station token. Ask a quality engineer for a new one."
            )
        return DeviceUser(station), station

    def authenticate_header(self, request) -> str:
        return self.keyword


def station_for_token_hash(token_hash: str) -> Station | None:
    """The station holding the token of ``token_hash``, with its line and plant, or None.

    What ``Station.objects.select_related("line__plant").filter(token_hash=...)
    .first()`` returns, read from the database on every request (a rotated,
    revoked or moved station is seen at once in every worker), but without
    compiling the query each time: on a frame that cost ten times its
    round trip to the database.
    """
    sql, converters, models_fields = _station_query()
    with connection.cursor() as cursor:
        cursor.execute(sql, (token_hash,))
        row = cursor.fetchone()
    if row is None:
        return None
    row = list(row)
    for index, (functions, expression) in converters.items():
        for convert in functions:
            row[index] = convert(row[index], expression, connection)
    objects, start = [], 0
    for model, fields in models_fields:
        objects.append(model.from_db(connection.alias, fields, row[start : start + len(fields)]))
        start += len(fields)
    station, line, plant = objects
    line.plant = plant
    station.line = line
    return station


@cache
def _station_query() -> tuple[str, dict, list]:
    """The SQL of the station lookup, its column converters, and the models' columns in it."""
    models_fields = [
        (model, [field.attname for field in model._meta.concrete_fields])
        for model in (Station, Line, Plant)
    ]
    paths = [
        prefix + name
        for prefix, (_, names) in zip(("", "line__", "line__plant__"), models_fields, strict=True)
        for name in names
    ]
    placeholder = "the token's hash"
    query = Station.objects.filter(token_hash=placeholder).order_by("pk").values_list(*paths)[:1]
    compiler = query.query.get_compiler(using=query.db)
    sql, params = compiler.as_sql()
    if params != (placeholder,):
        raise RuntimeError(f"Unexpected parameters {params} in the station token query.")
    converters = compiler.get_converters([column for column, _, _ in compiler.select])
    return sql, converters, models_fields


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
