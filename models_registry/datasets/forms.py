"""Admin forms of datasets: they parse what a person typed; the services decide the rules."""

from django import forms
from django.forms.models import BaseInlineFormSet

from masterdata.models import DefectType
from models_registry.datasets.models import Dataset, DatasetLabel
from models_registry.datasets.splitting import DEFAULT_SHARES, GROUPINGS
from models_registry.forms import LabelMappingForm


class DatasetCreateForm(forms.Form):
    name = forms.CharField(
        max_length=50, help_text="Letters, digits, '.', '-' or '_'; used in URLs and the API."
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


class DatasetChangeForm(forms.ModelForm):
    class Meta:
        model = Dataset
        fields = ["description"]


class DatasetLabelForm(LabelMappingForm):
    """A dataset label's meaning, chosen as for a version's label (same choices, same rule)."""

    class Meta:
        model = DatasetLabel
        fields = []


class DatasetLabelFormSet(BaseInlineFormSet):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # One query for every row's choices, not one per label.
        self.form_kwargs = {
            **self.form_kwargs,
            "defect_choices": [(d.code, str(d)) for d in DefectType.objects.filter(archived=False)],
        }

    def mapping(self) -> dict[str, str | None]:
        """Changed labels only, as dataset_labels_update takes them."""
        return {
            form.instance.name: form.mapped_code()
            for form in self.forms
            if form.has_changed() and form.cleaned_data.get("meaning")
        }


class ArchiveUploadForm(forms.Form):
    archive = forms.FileField(
        help_text=(
            "A .zip or .tar.gz of class folders (<label>/<file>), or of images with a "
            "labels.csv (file,label[,group]). A second upload adds to the dataset."
        )
    )


def _share(split: str) -> forms.FloatField:
    return forms.FloatField(min_value=0.0, max_value=1.0, initial=DEFAULT_SHARES[split])


class SplitForm(forms.Form):
    train = _share("train")
    validation = _share("validation")
    test = _share("test")
    seed = forms.IntegerField(initial=0, help_text="The same images and seed give the same split.")
    grouping = forms.ChoiceField(
        choices=[(g, g) for g in GROUPINGS],
        initial="auto",
        help_text=(
            "auto: the given group, else one derived from the file name (part17_2.jpg and "
            "part17_3.jpg are one part), so shots of one part stay on one side; "
            "none: every image on its own."
        ),
    )

    def arguments(self) -> dict:
        """What dataset_split takes."""
        data = self.cleaned_data
        return {
            "shares": {split: data[split] for split in DEFAULT_SHARES},
            "seed": data["seed"],
            "grouping": data["grouping"],
        }


class SnapshotForm(forms.Form):
    note = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="What this snapshot is for, e.g. 'before adding line 3's photos'.",
    )


class RelabelForm(forms.Form):
    label = forms.CharField(
        max_length=100, help_text="An existing label of the dataset, or a new one."
    )
