import datetime as dt
import zoneinfo

import pytest

from masterdata.selectors import plant_time
from tests import factories

PARIS = zoneinfo.ZoneInfo("Europe/Paris")


@pytest.fixture
def plant_with_three_shifts(db):
    plant = factories.plant(time_zone="Europe/Paris")
    factories.shift(plant_obj=plant, name="Early", start=dt.time(6), end=dt.time(14))
    factories.shift(plant_obj=plant, name="Late", start=dt.time(14), end=dt.time(22))
    factories.shift(plant_obj=plant, name="Night", start=dt.time(22), end=dt.time(6))
    return plant


def at(y, m, d, h, minute=0):
    return dt.datetime(y, m, d, h, minute, tzinfo=PARIS)


def test_night_shift_after_midnight_belongs_to_the_day_it_started(plant_with_three_shifts):
    when = plant_time(plant_with_three_shifts, at(2026, 3, 10, 2, 30))
    assert when.shift.name == "Night"
    assert when.shift_date == dt.date(2026, 3, 9)
    assert when.local_date == dt.date(2026, 3, 10)


def test_shift_boundaries_are_start_inclusive(plant_with_three_shifts):
    assert plant_time(plant_with_three_shifts, at(2026, 3, 10, 6)).shift.name == "Early"
    assert plant_time(plant_with_three_shifts, at(2026, 3, 10, 13, 59)).shift.name == "Early"
    assert plant_time(plant_with_three_shifts, at(2026, 3, 10, 22)).shift.name == "Night"


def test_local_date_uses_the_plant_time_zone_not_utc(plant_with_three_shifts):
    utc_evening = dt.datetime(2026, 7, 1, 22, 30, tzinfo=dt.UTC)  # 00:30 in Paris
    when = plant_time(plant_with_three_shifts, utc_evening)
    assert when.local_date == dt.date(2026, 7, 2)
    assert when.shift.name == "Night"
    assert when.shift_date == dt.date(2026, 7, 1)


def test_night_shift_follows_the_spring_daylight_saving_change(plant_with_three_shifts):
    # 29 March 2026, 02:00 Paris jumps to 03:00: the night shift is an hour shorter
    # but 05:30 local is still in it, and 06:00 local starts the early shift.
    before = dt.datetime(2026, 3, 29, 3, 30, tzinfo=dt.UTC)  # 05:30 CEST
    after = dt.datetime(2026, 3, 29, 4, 0, tzinfo=dt.UTC)  # 06:00 CEST
    assert plant_time(plant_with_three_shifts, before).shift.name == "Night"
    assert plant_time(plant_with_three_shifts, before).shift_date == dt.date(2026, 3, 28)
    assert plant_time(plant_with_three_shifts, after).shift.name == "Early"


def test_plant_without_calendar_has_no_shift(db):
    plant = factories.plant(time_zone="UTC")
    when = plant_time(plant, dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC))
    assert when.shift is None and when.shift_date is None
    assert when.local_date == dt.date(2026, 1, 1)
