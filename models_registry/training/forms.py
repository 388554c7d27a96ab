"""The admin's "Train" form: a snapshot, the model the version joins, a recipe, overrides."""

from django import forms

from models_registry.choices import ArtifactFormat, VersionStatus
from models_registry.datasets.models import DatasetSnapshot
from models_registry.models import ModelVersion
from models_registry.training.models import Recipe
from models_registry.training.plan import SETTINGS


class TrainingForm(forms.Form):
    snapshot = forms.ModelChoiceField(
        queryset=DatasetSnapshot.objects.select_related("dataset").order_by(
            "dataset__name", "-number"
        ),
        help_text="The frozen images, labels and splits to learn from.",
    )
    model = forms.CharField(
        max_length=50, help_text="The model the new version joins; created if it is new."
    )
    recipe = forms.ChoiceField(choices=Recipe.choices, initial=Recipe.DEFAULT)
    base = forms.ModelChoiceField(
        queryset=ModelVersion.objects.filter(
            status=VersionStatus.READY, artifact_format=ArtifactFormat.KERAS
        ).select_related("model"),
        required=False,
        help_text="For fine-tuning: a ready version uploaded as a .keras file; its "
        "convolutional part is reused with a new head.",
    )
    settings = forms.JSONField(
        required=False,
        initial=dict,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text=(
            'Optional overrides as JSON, e.g. {"epochs": 20, "flip": "none"}; everything '
            "left out is chosen from the data and shown on the run's page. Settings: "
            + ", ".join(SETTINGS)
            + "."
        ),
    )

    def clean_settings(self) -> dict:
        value = self.cleaned_data.get("settings") or {}
        if not isinstance(value, dict):
            raise forms.ValidationError('Give an object of name: value, e.g. {"epochs": 20}.')
        return value
