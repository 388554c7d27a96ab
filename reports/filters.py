"""The report filters, shared by the page, the JSON API, the downloads and the command.

Query parameters: ``from`` and ``to`` (YYYY-MM-DD, capture dates in the
plant's time zone, both included), ``plant`` and ``line`` (codes),
``station`` (code), ``product`` (SKU), ``model_version`` (``name:number`` or
``name vNumber``) and ``shift`` (a shift name such as ``Night``). Anything
wrong is reported in one sentence that names the parameter.
"""

import calendar
import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import DateField, F, Func, Q
from django.db.models.lookups import GreaterThanOrEqual, LessThanOrEqual
from django.utils import timezone

from masterdata.models import Line, Plant, Product, Shift, Station
from models_registry.models import ModelVersion, version_label

DEFAULT_DAYS = 7
MAX_DAYS = 366
MODEL_VERSION_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,49})(?::| v)(?P<number>\d{1,9})$"
)

# Query parameter → form field. "from" is a Python keyword, hence the renaming.
PARAMETERS = {
    "from": "date_from",
    "to": "date_to",
    "plant": "plant",
    "line": "line",
    "station": "station",
    "product": "product",
    "model_version": "model_version",
    "shift": "shift",
}
FIELD_PARAMETER = {field: param for param, field in PARAMETERS.items()}


class ReportFilterError(ValidationError):
    """A filter a person must fix; its message says which and how."""


@dataclass(frozen=True)
class ReportFilters:
    """Validated filters with the rows they name; ``None`` means 'all'."""

    date_from: dt.date
    date_to: dt.date
    plant: Plant | None = None
    line: Line | None = None
    station: Station | None = None
    product: Product | None = None
    model_version: ModelVersion | None = None
    shift: str | None = None

    def inspection_q(self, prefix: str = "", *, date_index: bool = True) -> Q:
        """The filters as a condition on inspections (``prefix`` reaches them from a relation).

        ``date_index=False`` compares the capture date through an expression
        SQLite cannot look up in an index, for ranges that hold most of the
        table (``reports.selectors.date_index_pays`` decides).
        """
        conditions = {}
        if date_index:
            conditions["local_date__gte"] = self.date_from
            conditions["local_date__lte"] = self.date_to
        else:
            date = Func(
                F(f"{prefix}local_date"), template="+%(expressions)s", output_field=DateField()
            )
            dates = Q(GreaterThanOrEqual(date, self.date_from)) & Q(
                LessThanOrEqual(date, self.date_to)
            )
        if self.plant is not None:
            conditions["line__plant"] = self.plant
        if self.line is not None:
            conditions["line"] = self.line
        if self.station is not None:
            conditions["station"] = self.station
        if self.product is not None:
            conditions["product"] = self.product
        if self.model_version is not None:
            conditions["model_version"] = self.model_version
        if self.shift is not None:
            conditions["shift__name"] = self.shift
        q = Q(**{f"{prefix}{key}": value for key, value in conditions.items()})
        return q if date_index else dates & q

    def as_params(self) -> dict[str, str]:
        """The filters as query parameters, to build links and to store with an export."""
        params = {"from": self.date_from.isoformat(), "to": self.date_to.isoformat()}
        if self.plant is not None:
            params["plant"] = self.plant.code
        if self.line is not None:
            params["line"] = self.line.code
        if self.station is not None:
            params["station"] = self.station.code
        if self.product is not None:
            params["product"] = self.product.sku
        if self.model_version is not None:
            params["model_version"] = self.model_version_label
        if self.shift is not None:
            params["shift"] = self.shift
        return params

    def described(self) -> list[tuple[str, str]]:
        """(label, value) pairs for people, 'all' included, e.g. on the workbook's summary."""
        return [
            ("From", self.date_from.isoformat()),
            ("To", self.date_to.isoformat()),
            ("Plant", self.plant.code if self.plant else "all"),
            ("Line", self.line.code if self.line else "all"),
            ("Station", self.station.code if self.station else "all"),
            ("Product", self.product.sku if self.product else "all"),
            ("Model version", self.model_version_label or "all"),
            ("Shift", self.shift or "all"),
            ("Time zone", str(self.time_zone)),
        ]

    @property
    def model_version_label(self) -> str | None:
        """The chosen version as people name it (and as ``model_version`` accepts it)."""
        version = self.model_version
        return version_label(version.model.name, version.number) if version else None

    @property
    def days(self) -> list[dt.date]:
        count = (self.date_to - self.date_from).days + 1
        return [self.date_from + dt.timedelta(days=i) for i in range(count)]

    @cached_property
    def time_zone(self) -> zoneinfo.ZoneInfo:
        return report_time_zone(_plant_of(self.plant, self.line, self.station))


def _plant_of(plant: Plant | None, line: Line | None, station: Station | None) -> Plant | None:
    if plant is not None:
        return plant
    if line is not None:
        return line.plant
    if station is not None:
        return station.line.plant
    return None


def report_time_zone(plant: Plant | None) -> zoneinfo.ZoneInfo:
    """The plant's zone; with no plant chosen, the zone all plants share, else UTC."""
    if plant is not None:
        return plant.tzinfo
    zones = list(Plant.objects.values_list("time_zone", flat=True).distinct()[:2])
    return zoneinfo.ZoneInfo(zones[0] if len(zones) == 1 else settings.TIME_ZONE)


# What leaving a parameter out means, for the message refusing it empty.
OMITTED_MEANS = {"from": "the default period", "to": "the default period"}


# ASCII digits only: \d would take other scripts' digits, which int() then reads.
DATE_SHAPE = re.compile(r"^(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})$")


class ReportDateField(forms.Field):
    """A YYYY-MM-DD date, parsed here so a refusal says which part is wrong.

    ``date.fromisoformat`` only says "out of range"; a person who typed
    2026-13-01 needs to hear that the month is the problem.
    """

    def to_python(self, value) -> dt.date | None:
        text = str(value).strip() if value is not None else ""
        if not text:
            return None
        match = DATE_SHAPE.match(text)
        if match is None:
            raise ValidationError("not a YYYY-MM-DD date", code="date_shape")
        year, month, day = (int(match[part]) for part in ("year", "month", "day"))
        if year < 1:
            raise ValidationError(
                "year 0000 does not exist; years start at 0001.", code="date_part"
            )
        if not 1 <= month <= 12:
            raise ValidationError(
                f"month {match['month']} does not exist; months go from 01 to 12.",
                code="date_part",
            )
        days = calendar.monthrange(year, month)[1]
        if not 1 <= day <= days:
            raise ValidationError(
                f"day {match['day']} does not exist; "
                f"{calendar.month_name[month]} {year} has {days} days.",
                code="date_part",
            )
        return dt.date(year, month, day)


class ReportFilterForm(forms.Form):
    """Parses and checks the filters; ``filters()`` returns them or raises ReportFilterError.

    A parameter given empty (``?station=``) is refused unless ``blank_means_all``:
    a script whose variable was unset must not get every station's figures
    as if they were one's. The page's own form sends its "all" choices empty.
    """

    def __init__(self, *args, blank_means_all: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.blank_means_all = blank_means_all

    date_from = ReportDateField(required=False)
    date_to = ReportDateField(required=False)
    plant = forms.CharField(required=False, max_length=50)
    line = forms.CharField(required=False, max_length=50)
    station = forms.CharField(required=False, max_length=50)
    product = forms.CharField(required=False, max_length=50)
    model_version = forms.CharField(required=False, max_length=70)
    shift = forms.CharField(required=False, max_length=50)

    def add_prefix(self, field_name: str) -> str:
        # Inputs and query parameters are called "from" and "to".
        return super().add_prefix(FIELD_PARAMETER.get(field_name, field_name))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        if not self.blank_means_all:
            self._refuse_empty()
        plant = self._lookup(Plant.objects.all(), "plant", "code", data.get("plant"))
        line = self._lookup(Line.objects.select_related("plant"), "line", "code", data.get("line"))
        station = self._lookup(
            Station.objects.select_related("line__plant"), "station", "code", data.get("station")
        )
        product = self._lookup(Product.objects.all(), "product", "sku", data.get("product"))
        version = self._model_version(data.get("model_version"))
        if plant and line and line.plant_id != plant.pk:
            raise ValidationError(f"Line '{line.code}' is not in plant '{plant.code}'.")
        if line and station and station.line_id != line.pk:
            raise ValidationError(f"Station '{station.code}' is not on line '{line.code}'.")
        if plant and station and station.line.plant_id != plant.pk:
            raise ValidationError(f"Station '{station.code}' is not in plant '{plant.code}'.")
        shift = data.get("shift") or None
        if shift is not None:
            shifts = Shift.objects.filter(name=shift)
            scope = _plant_of(plant, line, station)
            if scope is not None:
                shifts = shifts.filter(plant=scope)
            if not shifts.exists():
                where = f" in plant '{scope.code}'" if scope is not None else ""
                raise ValidationError(f"Unknown shift '{shift}'{where}.")
        date_from, date_to = self._period(data, _plant_of(plant, line, station))
        data["filters"] = ReportFilters(
            date_from=date_from,
            date_to=date_to,
            plant=plant,
            line=line,
            station=station,
            product=product,
            model_version=version,
            shift=shift,
        )
        return data

    def _refuse_empty(self) -> None:
        for param in PARAMETERS:
            value = self.data.get(param)
            if value is not None and not str(value).strip():
                meaning = OMITTED_MEANS.get(param, f"every {param.replace('_', ' ')}")
                raise ValidationError(
                    f"'{param}' is empty: leave it out for {meaning}, or give a value."
                )

    def _lookup(self, queryset, param: str, field: str, value: str | None):
        if not value:
            return None
        found = queryset.filter(**{field: value}).first()
        if found is None:
            raise ValidationError(f"Unknown {param} '{value}'.")
        return found

    def _model_version(self, value: str | None) -> ModelVersion | None:
        if not value:
            return None
        match = MODEL_VERSION_RE.match(value)
        if match is None:
            raise ValidationError(
                f"model_version must look like 'name:3' or 'name v3', not '{value}'."
            )
        version = (
            ModelVersion.objects.select_related("model")
            .filter(model__name=match["name"], number=int(match["number"]))
            .first()
        )
        if version is None:
            raise ValidationError(f"Unknown model_version '{value}'.")
        return version

    def _period(self, data: dict, plant: Plant | None) -> tuple[dt.date, dt.date]:
        date_to = data.get("date_to")
        date_from = data.get("date_from")
        if date_to is None:
            today = timezone.now().astimezone(report_time_zone(plant)).date()
            date_to = max(today, date_from) if date_from else today
        if date_from is None:
            if date_to < dt.date.min + dt.timedelta(days=DEFAULT_DAYS):
                raise ValidationError(f"'to' ({date_to.isoformat()}) is too early for a report.")
            date_from = date_to - dt.timedelta(days=DEFAULT_DAYS - 1)
        if date_from > date_to:
            raise ValidationError(
                f"'from' ({date_from.isoformat()}) is after 'to' ({date_to.isoformat()})."
            )
        if (date_to - date_from).days + 1 > MAX_DAYS:
            raise ValidationError(
                f"A report covers at most {MAX_DAYS} days; split "
                f"{date_from.isoformat()} to {date_to.isoformat()} into shorter periods."
            )
        return date_from, date_to

    def first_error(self) -> str:
        """The first problem, as one sentence naming the parameter."""
        for field, errors in self.errors.items():
            if field == "__all__":
                return str(errors[0])
            param = FIELD_PARAMETER.get(field, field)
            value = self.data.get(param, "")
            error = errors.as_data()[0]
            if error.code == "date_shape":
                return f"'{param}' must be a date written YYYY-MM-DD, not '{value}'."
            if error.code == "date_part":
                return f"'{param}' ({value}): {error.messages[0]}"
            if error.code == "max_length":
                limit = self.fields[field].max_length
                return f"'{param}' is too long: at most {limit} characters, not {len(value)}."
            return f"'{param}': {error.messages[0]}"
        return "Invalid filters."


def report_filters(data, *, blank_means_all: bool = False) -> ReportFilters:
    """Filters from a query dict (or any mapping of strings); raises ReportFilterError.

    Empty parameters are refused unless ``blank_means_all`` (the report page's form).
    """
    form = ReportFilterForm(data, blank_means_all=blank_means_all)
    if not form.is_valid():
        raise ReportFilterError(form.first_error())
    return form.cleaned_data["filters"]


def filters_from_params(params: dict[str, str]) -> ReportFilters:
    """Filters stored with an export job, checked again as they are used."""
    return report_filters({key: value for key, value in params.items() if key in PARAMETERS})
