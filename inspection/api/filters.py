import django_filters
from django import forms

from inspection.choices import ReviewStatus, Source, Verdict
from inspection.models import Inspection


class WholeNumberFilter(django_filters.NumberFilter):
    """A number filter that refuses '0.5' (400) where the schema says integer."""

    field_class = forms.IntegerField


class InspectionFilter(django_filters.FilterSet):
    station = django_filters.CharFilter(field_name="station__code", help_text="Station code.")
    line = django_filters.CharFilter(field_name="line__code", help_text="Line code.")
    product = django_filters.CharFilter(field_name="product__sku", help_text="Product SKU.")
    verdict = django_filters.ChoiceFilter(choices=Verdict.choices)
    review_status = django_filters.ChoiceFilter(choices=ReviewStatus.choices)
    source = django_filters.ChoiceFilter(choices=Source.choices)
    model = django_filters.CharFilter(
        field_name="model_version__model__name", help_text="Model name."
    )
    model_version = WholeNumberFilter(
        field_name="model_version__number", help_text="Version number (use with model)."
    )
    captured_after = django_filters.IsoDateTimeFilter(
        field_name="captured_at", lookup_expr="gte", help_text="ISO 8601, inclusive."
    )
    captured_before = django_filters.IsoDateTimeFilter(
        field_name="captured_at", lookup_expr="lt", help_text="ISO 8601, exclusive."
    )
    after_id = WholeNumberFilter(
        field_name="id", lookup_expr="gt", help_text="Only frames newer than this id (catch-up)."
    )

    class Meta:
        model = Inspection
        fields = []

    def is_valid(self) -> bool:
        """Also refuse a date, number or choice given empty (``?captured_before=``), which
        django-filter would read as "not given"; an empty text filter matches nothing."""
        valid = self.form.is_valid()
        for name, value in self.data.items():
            given_empty = value == "" and name in self.filters
            if given_empty and not isinstance(self.filters[name], django_filters.CharFilter):
                self.form.add_error(name, "Empty: leave it out, or give a value.")
                valid = False
        return valid
