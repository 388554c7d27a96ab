"""Shapes of the dataset API."""

from rest_framework import serializers

from common.api import StrictCharField
from common.job_api import JobSerializer
from masterdata.validators import code_validator
from models_registry.datasets.models import DatasetSnapshot, DatasetSplit
from models_registry.datasets.splitting import GROUPINGS


class DatasetCreateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=50, validators=[code_validator])  # the schema's pattern
    description = StrictCharField(required=False, allow_blank=True, default="")


class LabelSerializer(serializers.Serializer):
    name = serializers.CharField()
    meaning = serializers.CharField(help_text="A defect type code, 'no defect' or 'unmapped'.")
    images = serializers.IntegerField()


class DatasetSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    created_at = serializers.DateTimeField()
    image_count = serializers.IntegerField()
    label_counts = serializers.DictField(child=serializers.IntegerField())
    split_counts = serializers.DictField(child=serializers.IntegerField())
    labels = LabelSerializer(many=True)
    last_import = JobSerializer(allow_null=True)
    snapshots = serializers.ListField(child=serializers.IntegerField(), help_text="Numbers.")
    created_by = serializers.CharField(allow_null=True, help_text="Username.")


class ImportUploadSerializer(serializers.Serializer):
    archive = serializers.FileField(
        help_text=".zip or .tar.gz of class folders (<label>/<file>) or images + labels.csv"
    )


class SharesSerializer(serializers.Serializer):
    train = serializers.FloatField(min_value=0, max_value=1, required=False)
    validation = serializers.FloatField(min_value=0, max_value=1, required=False)
    test = serializers.FloatField(min_value=0, max_value=1, required=False)


class SplitSettingsSerializer(serializers.Serializer):
    shares = SharesSerializer(required=False, help_text="Default 0.7 / 0.15 / 0.15.")
    seed = serializers.IntegerField(required=False, default=0)
    grouping = serializers.ChoiceField(choices=GROUPINGS, required=False, default="auto")


class SplitSerializer(serializers.ModelSerializer):
    class Meta:
        model = DatasetSplit
        fields = ["number", "parameters", "counts", "created_at"]


class SnapshotCreateSerializer(serializers.Serializer):
    split = SplitSettingsSerializer(
        required=False, help_text="Re-split with these settings first (recorded)."
    )
    note = serializers.CharField(required=False, allow_blank=True, default="")


class SnapshotSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="name", read_only=True)
    split_number = serializers.IntegerField(source="split.number", allow_null=True, default=None)

    class Meta:
        model = DatasetSnapshot
        fields = [
            "dataset",
            "number",
            "image_count",
            "counts",
            "split_parameters",
            "split_number",
            "note",
            "created_at",
        ]
