"""Admin forms for master data."""

import zoneinfo

from django import forms
from django.db.models import Model, Q
from import_export.forms import ImportForm


def _pks(value: object) -> list:
    """Primary keys of a form's initial value for a relation (a pk, an object or a list of them)."""
    values = value if isinstance(value, list | tuple | set) else [value]
    return [v.pk if isinstance(v, Model) else v for v in values if v not in (None, "")]


class HideArchivedChoicesForm(forms.ModelForm):
    """Offers only non-archived rows in relation pickers, plus whatever the row already uses.

    Archived plants, lines, products and defect types stay valid history but
    should not be picked for new work; a row that already points at one keeps it.
    Any ModelForm whose pickers show master data can inherit from this.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            queryset = getattr(field, "queryset", None)
            if queryset is None or not any(
                f.name == "archived" for f in queryset.model._meta.fields
            ):
                continue
            current = _pks(self.initial.get(name))
            field.queryset = queryset.filter(Q(archived=False) | Q(pk__in=current))


def _time_zone_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(zoneinfo.available_timezones())]


class PlantForm(HideArchivedChoicesForm):
    """A plant, with its time zone picked from the IANA list rather than typed."""

    time_zone = forms.ChoiceField(
        choices=_time_zone_choices,
        initial="UTC",
        help_text="Reports cut days and shifts in this zone.",
    )


MAX_IMPORT_BYTES = 5 * 1024 * 1024


class MasterDataImportForm(ImportForm):
    """The admin import form, refusing files far larger than any plant's master data."""

    def clean_import_file(self):
        upload = self.cleaned_data["import_file"]
        if upload.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError(
                f"The file is {upload.size / 1024 / 1024:.1f} MB; master data files are limited "
                f"to {MAX_IMPORT_BYTES // 1024 // 1024} MB. Split it into several files."
            )
        return upload
