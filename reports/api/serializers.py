"""The shapes of the report JSON, used to render it and to document it in the schema."""

from rest_framework import serializers


def rate_field() -> serializers.FloatField:
    """A share between 0 and 1; null when its denominator is zero."""
    return serializers.FloatField(allow_null=True)


class FiltersSerializer(serializers.Serializer):
    from_ = serializers.DateField(source="date_from")
    to = serializers.DateField(source="date_to")
    plant = serializers.CharField(allow_null=True, source="plant.code", default=None)
    line = serializers.CharField(allow_null=True, source="line.code", default=None)
    station = serializers.CharField(allow_null=True, source="station.code", default=None)
    product = serializers.CharField(allow_null=True, source="product.sku", default=None)
    model_version = serializers.SerializerMethodField()
    shift = serializers.CharField(allow_null=True)
    time_zone = serializers.CharField()

    def get_fields(self):
        fields = super().get_fields()
        return {"from": fields.pop("from_"), **fields}

    def get_model_version(self, filters) -> str | None:
        return filters.as_params().get("model_version")


class RollupStatusSerializer(serializers.Serializer):
    rolled_up_to = serializers.DateTimeField(
        allow_null=True,
        help_text="The rollups hold every frame received and decision made before this moment.",
    )
    lag_seconds = serializers.FloatField(allow_null=True, help_text="Now minus rolled_up_to.")
    raw_station_days = serializers.IntegerField(
        allow_null=True,
        help_text="Station-days touched since then, counted from the raw frames instead.",
    )
    raw_station_hours = serializers.IntegerField(
        allow_null=True,
        help_text="Of those, the station-hours of the last days kept by hour: only their "
        "raw frames are read (the day's other hours come from hourly rollups).",
    )
    raw_only = serializers.BooleanField(
        help_text="Every figure was counted from the raw frames (no rollups yet, or far behind)."
    )
    current = serializers.BooleanField(
        help_text="Frames and decisions since rolled_up_to are counted too; false: the "
        "figures stand at rolled_up_to (LINESIGHT_REPORTS_CURRENT off)."
    )


class VolumeSerializer(serializers.Serializer):
    frames = serializers.IntegerField()
    passed = serializers.IntegerField()
    failed = serializers.IntegerField()
    to_review = serializers.IntegerField()
    pending = serializers.IntegerField()
    verified = serializers.IntegerField()
    defective = serializers.IntegerField()
    defect_rate = rate_field()
    confirmed_defects = serializers.IntegerField()
    first_pass_good = serializers.IntegerField()
    first_pass_yield = rate_field()


class SummarySerializer(serializers.Serializer):
    filters = FiltersSerializer()
    rollups = RollupStatusSerializer(required=False)
    totals = VolumeSerializer()
    definitions = serializers.DictField(child=serializers.CharField())


class VolumeRowSerializer(VolumeSerializer):
    date = serializers.DateField(required=False, help_text="by=day")
    shift_date = serializers.DateField(required=False, allow_null=True, help_text="by=shift")
    shift = serializers.CharField(required=False, allow_null=True, help_text="by=shift")
    plant = serializers.CharField(required=False, allow_null=True, help_text="by=shift, line")
    line = serializers.CharField(required=False, help_text="by=line, station")
    station = serializers.CharField(required=False, help_text="by=station")
    product = serializers.CharField(required=False, allow_null=True, help_text="by=product")
    product_name = serializers.CharField(required=False, allow_null=True, help_text="by=product")


class VolumeTableSerializer(serializers.Serializer):
    filters = FiltersSerializer()
    rollups = RollupStatusSerializer(required=False)
    by = serializers.CharField()
    rows = VolumeRowSerializer(many=True)


class ParetoRowSerializer(serializers.Serializer):
    defect_type = serializers.CharField()
    name = serializers.CharField()
    severity = serializers.CharField()
    confirmed = serializers.IntegerField()
    share = rate_field()
    cumulative_share = rate_field()
    awaiting_review = serializers.IntegerField()


class ParetoSerializer(serializers.Serializer):
    filters = FiltersSerializer()
    rollups = RollupStatusSerializer(required=False)
    rows = ParetoRowSerializer(many=True)


class PerDefectTypeSerializer(serializers.Serializer):
    defect_type = serializers.CharField()
    model_calls = serializers.IntegerField()
    inspector_calls = serializers.IntegerField()
    both = serializers.IntegerField()
    precision = rate_field()
    recall = rate_field()


class ConfusionSerializer(serializers.Serializer):
    labels = serializers.ListField(
        child=serializers.CharField(allow_null=True),
        help_text="Defect type codes; null is 'no defect'. Rows: model, columns: inspector.",
    )
    matrix = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()))


class ModelVersionRowSerializer(serializers.Serializer):
    model_version = serializers.CharField()
    model = serializers.CharField()
    version = serializers.IntegerField()
    frames = serializers.IntegerField()
    verified = serializers.IntegerField()
    agreed = serializers.IntegerField()
    agreement = rate_field()
    defect_calls_verified = serializers.IntegerField()
    false_calls = serializers.IntegerField()
    false_call_rate = rate_field()
    sampled_passes_verified = serializers.IntegerField()
    escapes = serializers.IntegerField()
    escape_rate = rate_field()
    confusion = ConfusionSerializer(source="*")
    per_defect_type = PerDefectTypeSerializer(many=True)


class ModelVersionsSerializer(serializers.Serializer):
    filters = FiltersSerializer()
    rollups = RollupStatusSerializer(required=False)
    rows = ModelVersionRowSerializer(many=True)


class AgreementRowSerializer(serializers.Serializer):
    model_version = serializers.CharField()
    date = serializers.DateField()
    verified = serializers.IntegerField()
    agreed = serializers.IntegerField()
    agreement = rate_field()


class AgreementSerializer(serializers.Serializer):
    filters = FiltersSerializer()
    rollups = RollupStatusSerializer(required=False)
    rows = AgreementRowSerializer(many=True)


class InspectorRowSerializer(serializers.Serializer):
    inspector = serializers.CharField()
    decisions = serializers.IntegerField()
    confirms = serializers.IntegerField()
    rejects = serializers.IntegerField()
    corrections = serializers.IntegerField()
    active_hours = serializers.IntegerField()
    decisions_per_hour = serializers.FloatField(allow_null=True)
    avg_frame_to_decision_s = serializers.FloatField(allow_null=True)
    avg_time_spent_s = serializers.FloatField(allow_null=True)
    correction_share = rate_field()
    reject_share = rate_field()


class InspectorsSerializer(serializers.Serializer):
    filters = FiltersSerializer()
    rollups = RollupStatusSerializer(required=False)
    rows = InspectorRowSerializer(many=True)
