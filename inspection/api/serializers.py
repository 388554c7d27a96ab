import datetime as dt
import json

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request

from inspection import events
from inspection.models import Inspection
from inspection.services import EdgeResult
from masterdata.models import Product


class TopKEntrySerializer(serializers.Serializer):
    label = serializers.CharField(max_length=100)
    confidence = serializers.FloatField(min_value=0.0, max_value=1.0)


class ModelVersionRefSerializer(serializers.Serializer):
    model = serializers.CharField()
    version = serializers.IntegerField()


# An idempotency key: what devices commonly send (a UUID, a counter, a
# timestamp) in visible ASCII, short enough to index.
IDEMPOTENCY_KEY_PATTERN = r"\A[\x21-\x7e]{1,100}\Z"
IDEMPOTENCY_KEY_HELP = (
    "Visible ASCII, 1-100 characters, new for every frame (a UUID is fine). "
    "A retry with the key of a stored frame returns that frame (200), never a second row."
)


class JSONListField(serializers.JSONField):
    """A bounded JSON list that may also arrive as a string in a multipart form.

    Bounded before parsing (``max_chars``) and in depth (``max_depth``), so a
    hostile document is a clear 400, not a RecursionError deep in the parser.
    """

    def __init__(self, *, max_chars: int = 10_000, max_items: int = 100, max_depth: int = 2, **kw):
        super().__init__(**kw)
        self.max_chars, self.max_items, self.max_depth = max_chars, max_items, max_depth

    def to_internal_value(self, data):
        if isinstance(data, str):
            if len(data) > self.max_chars:
                raise serializers.ValidationError(f"At most {self.max_chars:,} characters.")
            try:
                data = json.loads(data)
            except RecursionError:
                raise serializers.ValidationError(
                    f"Nested too deeply; at most {self.max_depth} levels."
                ) from None
            except ValueError:
                raise serializers.ValidationError("Must be a JSON list.") from None
        if not isinstance(data, list):
            raise serializers.ValidationError("Must be a JSON list.")
        if len(data) > self.max_items:
            raise serializers.ValidationError(f"At most {self.max_items} entries.")
        if _depth(data, self.max_depth + 1) > self.max_depth:
            raise serializers.ValidationError(
                f"Nested too deeply; at most {self.max_depth} levels."
            )
        return data


def _depth(value, limit: int) -> int:
    """How deeply lists and objects nest in ``value``, counted up to ``limit``."""
    if limit <= 0 or not isinstance(value, list | dict):
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(child, limit - 1) for child in children), default=0)


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
    frame_id = serializers.RegexField(
        IDEMPOTENCY_KEY_PATTERN,
        required=False,
        trim_whitespace=False,  # a key is compared byte for byte
        help_text="The frame's idempotency key, as a form field (or the Idempotency-Key header). "
        + IDEMPOTENCY_KEY_HELP,
        error_messages={"invalid": "Give 1-100 visible ASCII characters (a UUID is fine)."},
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

    def validate(self, attrs: dict) -> dict:
        """Checks the edge fields come together; ``edge`` is then the device's result, or None."""
        given = [name for name in self.EDGE_FIELDS if name in attrs]
        if given and len(given) != len(self.EDGE_FIELDS):
            missing = ", ".join(n for n in self.EDGE_FIELDS if n not in attrs)
            raise serializers.ValidationError(f"An edge result also needs: {missing}.")
        if "top_k" in attrs and not given:
            raise serializers.ValidationError("top_k is only for edge results (with label).")
        attrs["edge"] = self._edge_result(attrs) if given else None
        return attrs

    @staticmethod
    def _edge_result(attrs: dict) -> EdgeResult:
        model, _, number = attrs["model_version"].partition(":")
        return EdgeResult(
            model=model,
            version=int(number),
            label=attrs["label"],
            confidence=attrs["confidence"],
            top_k=tuple(attrs.get("top_k", ())),
        )


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
    image_removed_at = serializers.DateTimeField(
        source="image_deleted_at",
        allow_null=True,
        help_text="When the plant's retention policy removed the image (the row is kept); "
        "image_url then answers 410.",
    )

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
            "image_removed_at",
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


def image_url(inspection: Inspection, request: Request | None = None) -> str:
    path = reverse("api-inspection-image", args=[inspection.pk])
    return request.build_absolute_uri(path) if request else path


def inspection_representation(inspection: Inspection, request: Request | None = None) -> dict:
    """An inspection as the API shows it: the dashboards' payload, with an absolute image URL.

    Built directly rather than field by field: this is the answer to every
    frame, and DRF's generic field machinery costs more than the rest of it.
    """
    return {
        **events.inspection_payload(inspection),
        "image_url": image_url(inspection, request),
        "image_removed_at": (
            _iso(inspection.image_deleted_at) if inspection.image_deleted_at else None
        ),
        "captured_at": _iso(inspection.captured_at),
        "received_at": _iso(inspection.received_at),
    }


def _iso(value: dt.datetime) -> str:
    return serializers.DateTimeField().to_representation(value)
