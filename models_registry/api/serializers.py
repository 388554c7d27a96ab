"""Request and response shapes of the registry API.

Input serializers check types and look names up; the rules (what may be
deployed, which labels exist) stay in the services.
"""

from django.http import QueryDict
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from common.api import QueryCharField, QueryIntegerField, StrictCharField
from masterdata.api.schema import ErrorSerializer as ErrorSerializer  # re-exported
from masterdata.models import DefectType, Product, Station
from masterdata.validators import code_validator
from models_registry.choices import (
    ColorMode,
    ResizeInterpolation,
    ResizeMode,
    ServingRuntime,
    ValueScale,
)
from models_registry.models import (
    DefectThreshold,
    Deployment,
    DeploymentHistory,
    LabelMapping,
    MLModel,
    ModelVersion,
)

# --- Models and versions ------------------------------------------------------------


class ModelCreateSerializer(serializers.Serializer):
    name = StrictCharField(
        max_length=50,
        validators=[code_validator],  # also the schema's pattern
        help_text="Letters, digits, '.', '-' or '_'; used in URLs.",
    )
    description = StrictCharField(required=False, allow_blank=True, default="")


class ModelSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    versions_url = serializers.SerializerMethodField()
    version_count = serializers.IntegerField(read_only=True, default=0)
    latest_version = serializers.IntegerField(read_only=True, allow_null=True, default=None)

    class Meta:
        model = MLModel
        fields = [
            "name",
            "description",
            "created_at",
            "version_count",
            "latest_version",
            "url",
            "versions_url",
        ]

    def get_url(self, obj: MLModel) -> str:
        return reverse("registry:model-detail", args=[obj.name], request=self.context["request"])

    def get_versions_url(self, obj: MLModel) -> str:
        return reverse("registry:version-list", args=[obj.name], request=self.context["request"])


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "description": "One label per line, or comma-separated."},
            {"type": "array", "items": {"type": "string"}},
        ]
    }
)
class LabelsField(serializers.Field):
    """Labels as one text (newline- or comma-separated) or as repeated form fields."""

    default_error_messages = {"invalid": "Give labels as text or as a list of strings."}

    def get_value(self, dictionary):
        if isinstance(dictionary, QueryDict) and self.field_name in dictionary:
            values = dictionary.getlist(self.field_name)
            return values[0] if len(values) == 1 else values
        return super().get_value(dictionary)

    def to_internal_value(self, data) -> str | list[str]:
        if isinstance(data, str):
            return data
        if isinstance(data, list) and all(isinstance(item, str) for item in data):
            return data
        self.fail("invalid")

    def to_representation(self, value):
        return value


class VersionUploadSerializer(serializers.Serializer):
    artifact = serializers.FileField(
        help_text="A SavedModel directory as .zip or .tar.gz, or a Keras model as .keras."
    )
    labels = LabelsField(
        required=False,
        help_text=(
            "Output labels in output order; they win over a labels.txt in the archive. "
            "Without either, validation marks the version invalid."
        ),
    )
    notes = serializers.CharField(required=False, allow_blank=True, default="")
    resize_interpolation = serializers.ChoiceField(
        choices=ResizeInterpolation.choices,
        default=ResizeInterpolation.BILINEAR,
        help_text="How frames are resampled to the input size; choose what the model was "
        "trained with (Keras' image_dataset_from_directory: bilinear_tf).",
    )
    jpeg_draft = serializers.BooleanField(
        default=False,
        help_text="Allow reduced-scale JPEG decoding (faster, not the full decode). Leave it "
        "off unless the model was trained on frames decoded that way.",
    )
    resize_mode = serializers.ChoiceField(
        choices=ResizeMode.choices,
        default=ResizeMode.STRETCH,
        help_text="How a frame is fitted to the input size: stretch, letterbox (pad with "
        "black) or center_crop.",
    )
    value_scale = serializers.ChoiceField(
        choices=ValueScale.choices,
        default=ValueScale.UNIT,
        help_text="Pixel values the model expects: 0_1, -1_1 or 0_255 (a uint8 input is "
        "always 0_255).",
    )
    color_mode = serializers.ChoiceField(
        choices=ColorMode.choices,
        default=ColorMode.RGB,
        help_text="rgb or grayscale (a one-channel input is always grayscale).",
    )


class VersionChangeSerializer(serializers.Serializer):
    """What may change on a version that serves nowhere; fields left out stay as they are."""

    notes = serializers.CharField(required=False, allow_blank=True)
    resize_mode = serializers.ChoiceField(choices=ResizeMode.choices, required=False)
    value_scale = serializers.ChoiceField(
        choices=ValueScale.choices,
        required=False,
        help_text="A new scale validates the version again (TFLite parity is checked on "
        "inputs of this scale): poll until it is ready.",
    )
    color_mode = serializers.ChoiceField(choices=ColorMode.choices, required=False)
    resize_interpolation = serializers.ChoiceField(
        choices=ResizeInterpolation.choices, required=False
    )
    jpeg_draft = serializers.BooleanField(required=False)

    def validate(self, attrs: dict) -> dict:
        if not attrs:
            raise serializers.ValidationError(
                f"Name at least one of {', '.join(self.fields)} to change."
            )
        return attrs


class LabelMappingSerializer(serializers.ModelSerializer):
    defect_type = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    mapped = serializers.BooleanField(source="is_mapped", read_only=True)

    class Meta:
        model = LabelMapping
        fields = ["index", "label", "defect_type", "no_defect", "mapped"]


class SignatureSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = [
            "signature_name",
            "input_name",
            "output_name",
            "input_height",
            "input_width",
            "input_channels",
            "input_dtype",
            "outputs_probabilities",
        ]


class PreprocessingSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ["resize_mode", "value_scale", "color_mode", "resize_interpolation", "jpeg_draft"]


class ServingSerializer(serializers.ModelSerializer):
    runtime = serializers.ChoiceField(
        source="serving_runtime",
        choices=[("", "not validated yet"), *ServingRuntime.choices],
        read_only=True,
        help_text="TFLite when its conversion passed parity, else the SavedModel.",
    )
    reason = serializers.CharField(source="serving_runtime_reason", read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "runtime",
            "reason",
            "tflite_max_abs_diff",
            "warmup_latency_ms",
            "tflite_latency_ms",
        ]


class VersionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name", read_only=True)
    url = serializers.SerializerMethodField()
    status_reason = serializers.CharField(
        read_only=True, help_text="Why the version is invalid, if it is."
    )
    uploaded_by = serializers.SerializerMethodField()
    mappings = LabelMappingSerializer(many=True, read_only=True)
    signature = SignatureSerializer(source="*", read_only=True)
    preprocessing = PreprocessingSerializer(source="*", read_only=True)
    serving = ServingSerializer(source="*", read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "model",
            "number",
            "url",
            "status",
            "status_reason",
            "notes",
            "artifact_format",
            "sha256",
            "size_bytes",
            "uploaded_by",
            "uploaded_at",
            "validated_at",
            "validation_seconds",
            "labels",
            "mappings",
            "signature",
            "preprocessing",
            "serving",
        ]
        read_only_fields = fields

    def get_url(self, obj: ModelVersion) -> str:
        return reverse(
            "registry:version-detail",
            args=[obj.model.name, obj.number],
            request=self.context["request"],
        )

    def get_uploaded_by(self, obj: ModelVersion) -> str | None:
        return obj.uploaded_by.get_username() if obj.uploaded_by else None


class MappingUpdateSerializer(serializers.Serializer):
    mapping = serializers.DictField(
        child=serializers.CharField(allow_null=True, max_length=50),
        allow_empty=False,
        help_text=(
            "Label → defect type code, or null for 'no defect'. Labels not named keep "
            "their mapping."
        ),
    )


# --- Deployments -------------------------------------------------------------------


class DeploymentCreateSerializer(serializers.Serializer):
    """Looks up the station, product, version and defect types a deployment names."""

    station = serializers.CharField(max_length=50, help_text="Station code.")
    product = serializers.CharField(
        max_length=50,
        required=False,
        allow_null=True,
        allow_blank=True,
        default=None,
        help_text="Product SKU; leave out to serve every product of the station's line.",
    )
    model = serializers.CharField(max_length=50, help_text="Model name.")
    version = serializers.IntegerField(min_value=1, help_text="Version number of the model.")
    confidence_threshold = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.8)
    defect_thresholds = serializers.DictField(
        child=serializers.FloatField(min_value=0.0, max_value=1.0),
        required=False,
        default=dict,
        help_text="Defect type code → reject threshold in 0..1.",
    )
    always_review = serializers.ListField(
        child=serializers.CharField(max_length=50),
        required=False,
        default=list,
        help_text="Defect type codes that always go to human review.",
    )
    pass_review_rate = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.0)
    edge_recheck_rate = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.0)
    low_margin_review = serializers.FloatField(
        min_value=0.0,
        max_value=1.0,
        default=0.0,
        help_text="Passes whose two best labels are closer than this go to review "
        "('low_margin'); 0: off.",
    )
    low_margin_daily_cap = serializers.IntegerField(
        min_value=0, max_value=100000, default=50, help_text="Low-margin reviews per day, at most."
    )

    def validate_station(self, code: str) -> Station:
        return station_by_code(code)

    def validate_product(self, sku: str | None) -> Product | None:
        return product_by_sku(sku) if sku else None

    def validate(self, attrs: dict) -> dict:
        name, number = attrs["model"], attrs["version"]
        model = MLModel.objects.filter(name=name).first()
        if model is None:
            raise serializers.ValidationError({"model": f"There is no model named '{name}'."})
        version = model.versions.filter(number=number).first()
        if version is None:
            latest = model.versions.count()
            known = f"its versions are 1..{latest}" if latest else "it has no versions yet"
            raise serializers.ValidationError(
                {"version": f"{name} has no version {number}; {known}."}
            )
        attrs["version"] = version
        codes = set(attrs["defect_thresholds"]) | set(attrs["always_review"])
        defect_types = {d.code: d for d in DefectType.objects.filter(code__in=codes)}
        unknown = sorted(codes - set(defect_types))
        if unknown:
            field = (
                "defect_thresholds" if unknown[0] in attrs["defect_thresholds"] else "always_review"
            )
            raise serializers.ValidationError(
                {field: f"Unknown defect type code(s): {', '.join(unknown)}."}
            )
        attrs["defect_thresholds"] = {
            defect_types[code]: value for code, value in attrs["defect_thresholds"].items()
        }
        attrs["always_review"] = [defect_types[code] for code in attrs["always_review"]]
        return attrs


class SlotSerializer(serializers.Serializer):
    station = serializers.CharField(max_length=50, help_text="Station code.")
    product = serializers.CharField(
        max_length=50,
        required=False,
        allow_null=True,
        allow_blank=True,
        default=None,
        help_text="Product SKU, for a product's own deployment.",
    )

    def validate_station(self, code: str) -> Station:
        return station_by_code(code)

    def validate_product(self, sku: str | None) -> Product | None:
        return product_by_sku(sku) if sku else None


class DeploymentQuerySerializer(serializers.Serializer):
    station = QueryCharField(
        max_length=50, required=False, default=None, help_text="Station code: only its deployments."
    )
    product = QueryCharField(
        max_length=50,
        required=False,
        default=None,
        help_text="Product SKU: only deployments for that product.",
    )
    history_limit = QueryIntegerField(
        min_value=1, max_value=500, default=50, help_text="At most this many history entries."
    )

    def validate_station(self, code: str | None) -> Station | None:
        return station_by_code(code) if code else None

    def validate_product(self, sku: str | None) -> Product | None:
        return product_by_sku(sku) if sku else None


def station_by_code(code: str) -> Station:
    station = Station.objects.select_related("line").filter(code=code).first()
    if station is None:
        raise serializers.ValidationError(f"There is no station with code '{code}'.")
    return station


def product_by_sku(sku: str) -> Product:
    product = Product.objects.filter(sku=sku).first()
    if product is None:
        raise serializers.ValidationError(f"There is no product with SKU '{sku}'.")
    return product


class VersionRefSerializer(serializers.Serializer):
    model = serializers.CharField(source="model.name", read_only=True)
    number = serializers.IntegerField(read_only=True)


class DeploymentSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    station = serializers.CharField(source="station.code", read_only=True)
    product = serializers.SerializerMethodField()
    version = VersionRefSerializer(read_only=True)
    defect_thresholds = serializers.SerializerMethodField()
    always_review = serializers.SlugRelatedField(slug_field="code", many=True, read_only=True)
    activated_by = serializers.SerializerMethodField()

    class Meta:
        model = Deployment
        fields = [
            "id",
            "url",
            "station",
            "product",
            "version",
            "confidence_threshold",
            "defect_thresholds",
            "always_review",
            "pass_review_rate",
            "edge_recheck_rate",
            "low_margin_review",
            "low_margin_daily_cap",
            "is_active",
            "activated_at",
            "activated_by",
            "deactivated_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_url(self, obj: Deployment) -> str:
        return reverse("registry:deployment-detail", args=[obj.pk], request=self.context["request"])

    def get_product(self, obj: Deployment) -> str | None:
        return obj.product.sku if obj.product_id else None

    @extend_schema_field(
        {"type": "object", "additionalProperties": {"type": "number", "format": "double"}}
    )
    def get_defect_thresholds(self, obj: Deployment) -> dict[str, float]:
        rows: list[DefectThreshold] = list(obj.defect_thresholds.all())
        return {row.defect_type.code: row.threshold for row in rows}

    def get_activated_by(self, obj: Deployment) -> str | None:
        return obj.activated_by.get_username() if obj.activated_by else None


class DeploymentRefSerializer(serializers.ModelSerializer):
    version = VersionRefSerializer(read_only=True)

    class Meta:
        model = Deployment
        fields = ["id", "version"]


class DeploymentHistorySerializer(serializers.ModelSerializer):
    station = serializers.CharField(source="station.code", read_only=True)
    product = serializers.SerializerMethodField()
    from_deployment = DeploymentRefSerializer(allow_null=True, read_only=True)
    to_deployment = DeploymentRefSerializer(allow_null=True, read_only=True)
    by = serializers.SerializerMethodField()

    class Meta:
        model = DeploymentHistory
        fields = [
            "id",
            "at",
            "action",
            "station",
            "product",
            "from_deployment",
            "to_deployment",
            "by",
        ]

    def get_product(self, obj: DeploymentHistory) -> str | None:
        return obj.product.sku if obj.product_id else None

    def get_by(self, obj: DeploymentHistory) -> str | None:
        return obj.by.get_username() if obj.by else None


class DeploymentOverviewSerializer(serializers.Serializer):
    active = DeploymentSerializer(many=True, help_text="What serves now, one per slot.")
    history = DeploymentHistorySerializer(
        many=True, help_text="Activations, rollbacks and deactivations, newest first."
    )
