import json

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from inspection import events
from inspection.models import Inspection
from masterdata.models import Product


class TopKEntrySerializer(serializers.Serializer):
    label = serializers.CharField(max_length=100)
    confidence = serializers.FloatField(min_value=0.0, max_value=1.0)


class ModelVersionRefSerializer(serializers.Serializer):
    model = serializers.CharField()
    version = serializers.IntegerField()


class JSONListField(serializers.JSONField):
    """A JSON list that may also arrive as a string in a multipart form."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                raise serializers.ValidationError("Must be a JSON list.") from None
        if not isinstance(data, list):
            raise serializers.ValidationError("Must be a JSON list.")
        return data


class InspectionCreateSerializer(serializers.Serializer):
    """A frame from a station; the edge fields are for devices that ran the model themselves."""

    image = serializers.FileField(help_text="The frame, JPEG or PNG, as the camera took it.")
    station = serializers.CharField(max_length=50, help_text="The station's code.")
    product = serializers.SlugRelatedField(
        slug_field="sku",
        queryset=Product.objects.all(),
        required=False,
        allow_null=True,
        help_text="SKU; required only where the station's line runs several products.",
    )
    serial = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    lot = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    captured_at = serializers.DateTimeField(required=False, allow_null=True)
    label = serializers.CharField(
        max_length=100, required=False, help_text="Edge mode: the label the device's model chose."
    )
    confidence = serializers.FloatField(
        min_value=0.0, max_value=1.0, required=False, help_text="Edge mode: its confidence."
    )
    top_k = JSONListField(
        required=False, help_text='Edge mode: [{"label": ..., "confidence": ...}, ...].'
    )
    model_version = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}:[0-9]{1,9}$",
        required=False,
        help_text="Edge mode: the version the device ran, as model:number (e.g. bottle-cap:3).",
        error_messages={"invalid": "Give the model version as model:number, e.g. bottle-cap:3."},
    )

    EDGE_FIELDS = ("label", "confidence", "model_version")

    def validate_top_k(self, value):
        entries = TopKEntrySerializer(data=value, many=True)
        entries.is_valid(raise_exception=True)
        return [(e["label"], e["confidence"]) for e in entries.validated_data]

    def validate(self, attrs):
        given = [name for name in self.EDGE_FIELDS if name in attrs]
        if given and len(given) != len(self.EDGE_FIELDS):
            missing = ", ".join(n for n in self.EDGE_FIELDS if n not in attrs)
            raise serializers.ValidationError(f"An edge result also needs: {missing}.")
        if "top_k" in attrs and not given:
            raise serializers.ValidationError("top_k is only for edge results (with label).")
        return attrs


class InspectionSerializer(serializers.ModelSerializer):
    station = serializers.CharField(source="station.code")
    line = serializers.CharField(source="line.code")
    product = serializers.CharField(source="product.sku", allow_null=True, default=None)
    defect_type = serializers.CharField(source="defect_type.code", allow_null=True, default=None)
    defect_severity = serializers.CharField(
        source="defect_type.severity", allow_null=True, default=None
    )
    top_k = TopKEntrySerializer(many=True)
    model_version = serializers.SerializerMethodField()
    image_url = serializers.SerializerMethodField()

    class Meta:
        model = Inspection
        fields = [
            "id",
            "station",
            "line",
            "product",
            "verdict",
            "label",
            "defect_type",
            "defect_severity",
            "confidence",
            "top_k",
            "model_version",
            "latency_ms",
            "source",
            "review_status",
            "review_reason",
            "edge_rechecked",
            "edge_disagreement",
            "serial",
            "lot",
            "image_url",
            "captured_at",
            "received_at",
        ]
        read_only_fields = fields

    @extend_schema_field(ModelVersionRefSerializer)
    def get_model_version(self, obj) -> dict:
        return {"model": obj.model_version.model.name, "version": obj.model_version.number}

    def get_image_url(self, obj) -> str:
        return image_url(obj, self.context.get("request"))

    def to_representation(self, instance) -> dict:
        return inspection_representation(instance, self.context.get("request"))


def image_url(inspection, request=None) -> str:
    path = reverse("api-inspection-image", args=[inspection.pk])
    return request.build_absolute_uri(path) if request else path


def inspection_representation(inspection, request=None) -> dict:
    """An inspection as the API shows it: the dashboards' payload, with an absolute image URL.

    Built directly rather than field by field: this is the answer to every
    frame, and DRF's generic field machinery costs more than the rest of it.
    """
    return {
        **events.inspection_payload(inspection),
        "image_url": image_url(inspection, request),
        "captured_at": _iso(inspection.captured_at),
        "received_at": _iso(inspection.received_at),
    }


def _iso(value) -> str:
    return serializers.DateTimeField().to_representation(value)
