import django_filters

from inspection.choices import ReviewStatus, Source, Verdict
from inspection.models import Inspection


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
    model_version = django_filters.NumberFilter(
        field_name="model_version__number", help_text="Version number (use with model)."
    )
    captured_after = django_filters.IsoDateTimeFilter(
        field_name="captured_at", lookup_expr="gte", help_text="ISO 8601, inclusive."
    )
    captured_before = django_filters.IsoDateTimeFilter(
        field_name="captured_at", lookup_expr="lt", help_text="ISO 8601, exclusive."
    )
    after_id = django_filters.NumberFilter(
        field_name="id", lookup_expr="gt", help_text="Only frames newer than this id (catch-up)."
    )

    class Meta:
        model = Inspection
        fields = []
