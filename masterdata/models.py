"""Master data: where frames come from and what can be wrong with a product."""

import zoneinfo

from django.core.exceptions import ValidationError
from django.db import models

from masterdata.choices import Severity
from masterdata.validators import code_validator


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"'{value}' is not a time zone name such as Europe/Paris.")


class Plant(models.Model):
    """A factory; reports are cut by day and shift in its time zone."""

    code = models.CharField(max_length=50, unique=True, validators=[code_validator])
    name = models.CharField(max_length=200)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    archived = models.BooleanField(
        default=False, help_text="Hidden from pickers; kept for history."
    )

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} — {self.name}"

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class Shift(models.Model):
    """One shift of a plant's calendar, in local wall-clock time.

    A shift whose end is not after its start runs across midnight (22:00-06:00).
    """

    plant = models.ForeignKey(Plant, on_delete=models.CASCADE, related_name="shifts")
    name = models.CharField(max_length=50)
    start = models.TimeField()
    end = models.TimeField()

    class Meta:
        ordering = ["plant", "start"]
        constraints = [
            models.UniqueConstraint(fields=["plant", "name"], name="shift_unique_name_per_plant"),
            models.UniqueConstraint(fields=["plant", "start"], name="shift_unique_start_per_plant"),
        ]

    def __str__(self) -> str:
        return f"{self.plant.code} {self.name} ({self.start:%H:%M}-{self.end:%H:%M})"

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start


class Line(models.Model):
    """A production line of a plant; dashboards and reports group by it."""

    code = models.CharField(max_length=50, unique=True, validators=[code_validator])
    name = models.CharField(max_length=200, blank=True)
    plant = models.ForeignKey(Plant, on_delete=models.PROTECT, related_name="lines")
    archived = models.BooleanField(
        default=False, help_text="Hidden from pickers; kept for history."
    )

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class Station(models.Model):
    """An inspection station (a camera) on a line, with its device credentials.

    The device token is shown once when created or rotated; only its SHA-256
    is stored. Tokens are long random strings, so an unsalted hash is safe and
    lets authentication look the station up by index.
    """

    code = models.CharField(max_length=50, unique=True, validators=[code_validator])
    line = models.ForeignKey(Line, on_delete=models.PROTECT, related_name="stations")
    description = models.TextField(blank=True)
    active = models.BooleanField(
        default=True, help_text="Inactive stations are refused by the API."
    )
    token_hash = models.CharField(max_length=64, blank=True, editable=False, db_index=True)
    token_prefix = models.CharField(
        max_length=12,
        blank=True,
        editable=False,
        help_text="First characters, to tell tokens apart.",
    )
    token_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code

    @property
    def has_token(self) -> bool:
        return bool(self.token_hash)


class Product(models.Model):
    """A product (SKU) and the lines it runs on."""

    sku = models.CharField("SKU", max_length=50, unique=True, validators=[code_validator])
    name = models.CharField(max_length=200)
    lines = models.ManyToManyField(Line, related_name="products", blank=True)
    archived = models.BooleanField(
        default=False, help_text="Hidden from pickers; kept for history."
    )

    class Meta:
        ordering = ["sku"]

    def __str__(self) -> str:
        return f"{self.sku} — {self.name}"


class DefectType(models.Model):
    """A kind of defect a model can report and an inspector can assign."""

    code = models.CharField(max_length=50, unique=True, validators=[code_validator])
    name = models.CharField(max_length=200)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.MAJOR)
    description = models.TextField(blank=True)
    archived = models.BooleanField(
        default=False, help_text="Hidden from pickers; kept for history."
    )

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} — {self.name}"
