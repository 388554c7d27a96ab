"""How user-token endpoints appear in the OpenAPI schema.

A station device token is authenticated on these endpoints only to be refused
with 403, so their operations list user tokens and sessions, not it.
"""

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

from masterdata.authentication import StationTokenScheme


class UserTokenOnlySchema(AutoSchema):
    def get_auth(self) -> list[dict]:
        return [
            requirement
            for requirement in super().get_auth()
            if StationTokenScheme.name not in requirement
        ]


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="One sentence a person can act on.")
    errors = serializers.DictField(
        required=False,
        help_text="Field errors as DRF reports them, for 400 responses.",
    )
