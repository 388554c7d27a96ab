"""Tables of the reports app: the rollups the reports read, and the permission holder.

Background exports are ``common.models.Job`` rows. ``ReportAccess`` exists only
to carry the reports permission (``reports.view_reports``).
"""

from django.db import models

from masterdata.models import DefectType, Line, Product, Shift, Station
from models_registry.models import ModelVersion


class ReportAccess(models.Model):
    """No table: the holder of the permission to read reports and download exports."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_reports", "Can read reports and download exports")]
        verbose_name = "report access"

    def __str__(self) -> str:
        return "Report access"


class RollupKey(models.Model):
    """The columns every rollup keeps: what the report filters select on and the volume
    tables group by. A rollup row counts the inspections sharing them (and its own
    columns) within a bucket, one plant-local capture day of one station.

    The columns carry the inspection's own names, so the report filters read
    rollups and raw rows alike. A bucket is only ever replaced whole, from the
    raw rows, by :mod:`reports.rollups`: a figure summed from rollups is the raw
    query's by construction. Counts are kept as counts, never as rates or means.
    """

    local_date = models.DateField()
    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="+")
    line = models.ForeignKey(Line, on_delete=models.CASCADE, related_name="+")
    product = models.ForeignKey(
        Product, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    shift = models.ForeignKey(
        Shift, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    shift_date = models.DateField(null=True, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.local_date} station #{self.station_id}"


class VolumeCounts(RollupKey):
    """Volume and quality counts (``reports.figures.VOLUME_CONDITIONS``): summary, trend,
    tables by day, shift, line, station and product."""

    frames = models.PositiveIntegerField()
    passed = models.PositiveIntegerField()
    failed = models.PositiveIntegerField()
    to_review = models.PositiveIntegerField()
    pending = models.PositiveIntegerField()
    verified = models.PositiveIntegerField()
    defective = models.PositiveIntegerField()
    confirmed_defects = models.PositiveIntegerField()
    first_pass_good = models.PositiveIntegerField()

    class Meta:
        abstract = True


class DefectCounts(RollupKey):
    """The Pareto: defective frames decided or awaiting review, by final defect type."""

    final_defect_type = models.ForeignKey(
        DefectType, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    final_is_defect = models.BooleanField()
    confirmed = models.PositiveIntegerField()
    awaiting_review = models.PositiveIntegerField()

    class Meta:
        abstract = True


class CallCounts(RollupKey):
    """Model against inspectors: frames by the model's call and the final one."""

    defect_type = models.ForeignKey(
        DefectType, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    final_defect_type = models.ForeignKey(
        DefectType, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    final_is_defect = models.BooleanField()
    frames = models.PositiveIntegerField()
    verified = models.PositiveIntegerField()
    sampled_verified = models.PositiveIntegerField()

    class Meta:
        abstract = True


class VolumeRollup(VolumeCounts):
    """Volume counts by station-day (every day)."""

    class Meta:
        indexes = [
            models.Index(fields=["local_date", "station"], name="reports_vol_date_station"),
            models.Index(fields=["station", "local_date"], name="reports_vol_station_date"),
        ]


class DefectRollup(DefectCounts):
    """Pareto counts by station-day (every day)."""

    class Meta:
        indexes = [
            models.Index(fields=["local_date", "station"], name="reports_def_date_station"),
            models.Index(fields=["station", "local_date"], name="reports_def_station_date"),
        ]


class CallRollup(CallCounts):
    """Call counts by station-day (every day)."""

    class Meta:
        indexes = [
            models.Index(fields=["local_date", "station"], name="reports_call_date_station"),
            models.Index(fields=["station", "local_date"], name="reports_call_station_date"),
        ]


class HourlyRollupKey(models.Model):
    """The capture hour (UTC, truncated) of an hourly rollup row: the recent days are also
    kept by station-hour, so a report reads the raw rows of the touched hours only,
    not of whole station-days (see :mod:`reports.rollups`)."""

    hour = models.DateTimeField()

    class Meta:
        abstract = True


class HourlyVolumeRollup(VolumeCounts, HourlyRollupKey):
    """Volume counts by station-hour, for the recent days (``RollupState.hourly_from``)."""

    class Meta:
        indexes = [
            models.Index(fields=["local_date", "station", "hour"], name="reports_hvol_day_hour"),
        ]


class HourlyDefectRollup(DefectCounts, HourlyRollupKey):
    """Pareto counts by station-hour, for the recent days."""

    class Meta:
        indexes = [
            models.Index(fields=["local_date", "station", "hour"], name="reports_hdef_day_hour"),
        ]


class HourlyCallRollup(CallCounts, HourlyRollupKey):
    """Call counts by station-hour, for the recent days."""

    class Meta:
        indexes = [
            models.Index(fields=["local_date", "station", "hour"], name="reports_hcall_day_hour"),
        ]


class RollupState(models.Model):
    """Where the rollups stand: every raw row received (and decision made) before
    ``rolled_up_to`` is in them, give or take the overlap (see :mod:`reports.rollups`)."""

    name = models.CharField(max_length=50, unique=True)
    rolled_up_to = models.DateTimeField(null=True, blank=True)
    # Capture days from this one on are also kept by station-hour (None: none yet).
    hourly_from = models.DateField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name}: up to {self.rolled_up_to}"
