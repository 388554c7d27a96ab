"""Admin forms of the registry: they parse what a person typed; services decide the rules."""

from django import forms
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet

from masterdata.models import DefectType, Product, Station
from models_registry.choices import ResizeInterpolation, VersionStatus
from models_registry.labels import parse_labels_text
from models_registry.models import (
    Deployment,
    LabelMapping,
    MLModel,
    ModelVersion,
    version_label,
)
from models_registry.services import (
    PREPROCESSING_FIELDS,
    label_mappings_check,
    version_change_check,
)

NO_DEFECT = "__no_defect__"  # never a defect code: codes start with a letter or digit


def _unit_interval_field(label: str, initial: float, help_text: str = "") -> forms.FloatField:
    return forms.FloatField(
        label=label, initial=initial, min_value=0.0, max_value=1.0, help_text=help_text
    )


class VersionUploadForm(forms.Form):
    """An artifact to store as the model's next version; validation starts on its own."""

    model = forms.ModelChoiceField(queryset=MLModel.objects.all())
    artifact = forms.FileField(
        help_text="A SavedModel directory as .zip or .tar.gz, or a Keras model as .keras."
    )
    labels = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 40}),
        help_text=(
            "One per line, in the order of the model's outputs. Leave empty when the "
            "archive holds a labels.txt."
        ),
    )
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))
    resize_interpolation = forms.ChoiceField(
        choices=ResizeInterpolation.choices,
        initial=ResizeInterpolation.BILINEAR,
        help_text="How frames are resampled to the model's input size: what it was trained with.",
    )
    jpeg_draft = forms.BooleanField(
        label="Fast JPEG decoding",
        required=False,
        help_text=ModelVersion._meta.get_field("jpeg_draft").help_text,
    )

    def preprocessing(self) -> dict:
        """The declared decoding, as version_upload takes it."""
        return {
            "resize_interpolation": self.cleaned_data["resize_interpolation"],
            "jpeg_draft": self.cleaned_data["jpeg_draft"],
        }

    def clean_labels(self) -> list[str] | None:
        text = self.cleaned_data["labels"]
        if not text.strip():
            return None
        try:
            return parse_labels_text(text)
        except ValidationError as error:
            raise ValidationError(error.messages) from None


class VersionLabelsForm(forms.Form):
    """A version's labels typed again, one per line in output order; validation follows."""

    labels = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10, "cols": 40}),
        help_text="One per line, in the order of the model's outputs.",
    )

    def clean_labels(self) -> list[str]:
        try:
            return parse_labels_text(self.cleaned_data["labels"])
        except ValidationError as error:
            raise ValidationError(error.messages) from None


class VersionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: ModelVersion) -> str:
        return version_label(obj.model.name, obj.number)


class DeploymentActivateForm(forms.Form):
    """What an activation needs; only ready versions are offered."""

    station = forms.ModelChoiceField(queryset=Station.objects.select_related("line"))
    product = forms.ModelChoiceField(
        queryset=Product.objects.filter(archived=False),
        required=False,
        help_text="Leave empty to serve every product of the station's line.",
    )
    version = VersionChoiceField(
        queryset=ModelVersion.objects.filter(status=VersionStatus.READY)
        .select_related("model")
        .order_by("model__name", "-number"),
        help_text="Only ready versions with every label mapped can be deployed.",
    )
    confidence_threshold = _unit_interval_field(
        "Confidence threshold", 0.8, "Below this confidence a frame goes to human review."
    )
    always_review = forms.ModelMultipleChoiceField(
        queryset=DefectType.objects.filter(archived=False),
        required=False,
        widget=FilteredSelectMultiple("defect types", is_stacked=False),
        help_text="Defect types that always go to human review.",
    )
    pass_review_rate = _unit_interval_field(
        "Pass review rate", 0.0, "Share of 'pass' frames also sent to review, to measure escapes."
    )
    edge_recheck_rate = _unit_interval_field(
        "Edge recheck rate", 0.0, "Share of edge frames the server classifies again."
    )
    low_margin_review = forms.FloatField(
        label="Send the least sure frames to review: margin",
        initial=0.0,
        min_value=0.0,
        max_value=1.0,
        required=False,
        help_text="A pass whose two best labels are closer than this (e.g. 0.2) goes to review "
        "as 'Model unsure between two labels', to teach the next version; 0 switches it off.",
    )
    low_margin_daily_cap = forms.IntegerField(
        label="Least sure frames per day, at most",
        initial=50,
        min_value=0,
        max_value=100000,
        required=False,
        help_text="A cap per station and plant day, so the review queue stays workable.",
    )

    def clean_low_margin_review(self) -> float:
        value = self.cleaned_data["low_margin_review"]
        return 0.0 if value is None else value

    def clean_low_margin_daily_cap(self) -> int:
        value = self.cleaned_data["low_margin_daily_cap"]
        return 50 if value is None else value


def deployment_initial(deployment: Deployment | None) -> tuple[dict, list[dict]]:
    """The activation form's starting values from the deployment a new one replaces.

    A new version keeps the slot's thresholds, always-reviewed types, audit
    sample and edge re-check unless the engineer changes them; the thresholds
    formset's rows come second.
    """
    if deployment is None:
        return {}, []
    fields = {
        "confidence_threshold": deployment.confidence_threshold,
        "pass_review_rate": deployment.pass_review_rate,
        "edge_recheck_rate": deployment.edge_recheck_rate,
        "low_margin_review": deployment.low_margin_review,
        "low_margin_daily_cap": deployment.low_margin_daily_cap,
        "always_review": list(deployment.always_review.values_list("pk", flat=True)),
    }
    rows = [
        {"defect_type": row.defect_type_id, "threshold": row.threshold}
        for row in deployment.defect_thresholds.order_by("defect_type__code")
    ]
    return fields, rows


class DefectThresholdForm(forms.Form):
    defect_type = forms.ModelChoiceField(
        queryset=DefectType.objects.filter(archived=False), required=False
    )
    threshold = forms.FloatField(min_value=0.0, max_value=1.0, required=False)

    def clean(self) -> dict:
        cleaned = super().clean()
        has_type = cleaned.get("defect_type") is not None
        has_value = cleaned.get("threshold") is not None
        if has_type != has_value and not self.errors:
            raise ValidationError("Give both a defect type and its threshold, or neither.")
        return cleaned


class BaseDefectThresholdFormSet(forms.BaseFormSet):
    def clean(self) -> None:
        if any(self.errors):
            return
        seen = set()
        for form in self.forms:
            defect_type = form.cleaned_data.get("defect_type")
            if defect_type is None:
                continue
            if defect_type in seen:
                raise ValidationError(f"{defect_type.code} has two thresholds; keep one.")
            seen.add(defect_type)

    def thresholds(self) -> dict[DefectType, float]:
        return {
            form.cleaned_data["defect_type"]: form.cleaned_data["threshold"]
            for form in self.forms
            if form.cleaned_data.get("defect_type") is not None
        }


DefectThresholdFormSet = forms.formset_factory(
    DefectThresholdForm, formset=BaseDefectThresholdFormSet, extra=3, max_num=50
)


class ModelVersionChangeForm(forms.ModelForm):
    """Notes and declared preprocessing; everything else on a version is read-only."""

    class Meta:
        model = ModelVersion
        fields = ["notes", *PREPROCESSING_FIELDS]

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.instance.pk is not None:  # the saved version, before this form's changes
            version_change_check(
                self.instance, **{field: cleaned.get(field) for field in PREPROCESSING_FIELDS}
            )
        return cleaned


class LabelMappingForm(forms.ModelForm):
    """One label's meaning: a defect type or 'no defect'."""

    meaning = forms.ChoiceField(required=False)

    class Meta:
        model = LabelMapping
        fields = []

    def __init__(self, *args, defect_choices: list[tuple[str, str]] = (), **kwargs):
        super().__init__(*args, **kwargs)
        row = self.instance
        choices = [("", "— unmapped —")] if not row.is_mapped else []
        choices.append((NO_DEFECT, "no defect (the part is good)"))
        choices += defect_choices
        if row.defect_type_id is not None and row.defect_type.code not in dict(defect_choices):
            choices.append((row.defect_type.code, f"{row.defect_type} (archived)"))
        self.fields["meaning"].choices = choices
        if row.no_defect:
            self.initial["meaning"] = NO_DEFECT
        elif row.defect_type_id is not None:
            self.initial["meaning"] = row.defect_type.code

    def clean_meaning(self) -> str:
        meaning = self.cleaned_data["meaning"]
        if not meaning and self.instance.is_mapped:
            raise ValidationError("Choose a defect type or 'no defect'.")
        return meaning

    def mapped_code(self) -> str | None:
        """The value label_mappings_update expects: a defect code, or None for 'no defect'."""
        meaning = self.cleaned_data["meaning"]
        return None if meaning == NO_DEFECT else meaning


class LabelMappingFormSet(BaseInlineFormSet):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # One query for every row's choices, not one per label.
        self.form_kwargs = {
            **self.form_kwargs,
            "defect_choices": [(d.code, str(d)) for d in DefectType.objects.filter(archived=False)],
        }

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        mapping = self.mapping()
        if mapping:
            try:
                label_mappings_check(version=self.instance, mapping=mapping)
            except ValidationError as error:
                raise ValidationError(error.messages) from None

    def mapping(self) -> dict[str, str | None]:
        """Changed labels only, as label_mappings_update takes them."""
        return {
            form.instance.label: form.mapped_code()
            for form in self.forms
            if form.has_changed() and form.cleaned_data.get("meaning")
        }
