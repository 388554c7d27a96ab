"""Request and response shapes of the master data API.

Rows are named by code (products by SKU), never by primary key. Serializers
check types and look codes up; the rules (unique codes, archived rows not
picked for new work, what may be deleted) stay in masterdata.services.
"""

from django.db import models
from rest_framework import serializers
from rest_framework.reverse import reverse

from common.api import StrictBooleanField, StrictCharField
from masterdata.models import DefectType, Line, Plant, Product, Shift, Station

NAMESPACE = "masterdata-api"


def _url(name: str, context: dict, *args: str) -> str:
    return reverse(f"{NAMESPACE}:{name}", args=args, request=context.get("request"))


class MasterDataSerializer(serializers.ModelSerializer):
    """Text fields refuse numbers and booleans instead of storing them as text."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
        models.BooleanField: StrictBooleanField,
    }
    url = serializers.SerializerMethodField()
    detail_view = ""

    def get_url(self, obj: models.Model) -> str:
        key = getattr(obj, "sku", None) or obj.code
        return _url(self.detail_view, self.context, key)

    def to_internal_value(self, data):
        # DRF reads any iterable, {} included, as a list of related objects.
        for name, field in self.fields.items():
            many = isinstance(field, serializers.ManyRelatedField)
            if many and hasattr(data, "get") and isinstance(data.get(name), dict):
                raise serializers.ValidationError({name: ["Must be a list."]})
        return super().to_internal_value(data)


class ShiftSerializer(MasterDataSerializer):
    crosses_midnight = serializers.BooleanField(
        read_only=True, help_text="True when it ends on the next day (22:00-06:00)."
    )

    class Meta:
        model = Shift
        fields = ["name", "start", "end", "crosses_midnight", "url"]
        # (plant, name) and (plant, start) are unique: checked by the service with the plant.
        validators = []

    def get_url(self, obj: Shift) -> str:
        return _url("shift-detail", self.context, obj.plant.code, obj.name)


class PlantSerializer(MasterDataSerializer):
    detail_view = "plant-detail"
    lines = serializers.SlugRelatedField(
        slug_field="code", many=True, read_only=True, help_text="Codes of its lines."
    )
    shifts = ShiftSerializer(many=True, read_only=True, help_text="Its shift calendar.")

    class Meta:
        model = Plant
        fields = ["code", "name", "time_zone", "archived", "lines", "shifts", "url"]


class LineSerializer(MasterDataSerializer):
    detail_view = "line-detail"
    plant = serializers.SlugRelatedField(
        slug_field="code", queryset=Plant.objects.all(), help_text="Plant code."
    )
    stations = serializers.SlugRelatedField(
        slug_field="code", many=True, read_only=True, help_text="Codes of its stations."
    )

    class Meta:
        model = Line
        fields = ["code", "name", "plant", "archived", "stations", "url"]


class StationSerializer(MasterDataSerializer):
    detail_view = "station-detail"
    line = serializers.SlugRelatedField(
        slug_field="code", queryset=Line.objects.all(), help_text="Line code."
    )
    plant = serializers.CharField(source="line.plant.code", read_only=True)
    has_token = serializers.BooleanField(
        read_only=True, help_text="False when revoked: the device is refused."
    )
    token_prefix = serializers.CharField(
        read_only=True, help_text="The token's first characters, to tell tokens apart."
    )

    class Meta:
        model = Station
        fields = [
            "code",
            "line",
            "plant",
            "description",
            "active",
            "has_token",
            "token_prefix",
            "token_rotated_at",
            "url",
        ]
        read_only_fields = ["token_rotated_at"]


class StationCreatedSerializer(StationSerializer):
    token = serializers.CharField(
        read_only=True,
        help_text="The device token, shown this once; only its hash is kept.",
    )

    class Meta(StationSerializer.Meta):
        fields = [*StationSerializer.Meta.fields, "token"]


class StationTokenSerializer(serializers.Serializer):
    station = serializers.CharField(read_only=True, help_text="Station code.")
    token = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text="The new device token, shown this once (null after a revoke).",
    )
    token_prefix = serializers.CharField(read_only=True)
    token_rotated_at = serializers.DateTimeField(read_only=True)


class ProductSerializer(MasterDataSerializer):
    detail_view = "product-detail"
    lines = serializers.SlugRelatedField(
        slug_field="code",
        many=True,
        queryset=Line.objects.all(),
        required=False,
        help_text="Codes of the lines it runs on.",
    )

    class Meta:
        model = Product
        fields = ["sku", "name", "lines", "archived", "url"]


class DefectTypeSerializer(MasterDataSerializer):
    detail_view = "defect-type-detail"

    class Meta:
        model = DefectType
        fields = ["code", "name", "severity", "description", "archived", "url"]
