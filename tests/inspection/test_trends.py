"""The dashboards' small pictures add up: bars of the last hour, yield by shift."""

import datetime as dt

import pytest
from django.utils import timezone

from inspection.models import Inspection
from inspection.trends import defect_sparklines, line_yield
from tests import factories
from tests.browser import scene

pytestmark = pytest.mark.django_db


def frame_at(deployment, when, *, defect: bool):
    row = factories.inspection_row(
        deployment_obj=deployment, verdict="fail" if defect else "pass", captured_at=when
    )
    Inspection.objects.filter(pk=row.pk).update(received_at=when, final_is_defect=defect)
    return row


def test_sparkline_is_the_defect_share_of_each_five_minutes_of_the_last_hour():
    plant = scene.build()
    first, second = plant.deployments
    now = timezone.now().replace(second=30, microsecond=0)
    frame_at(first, now - dt.timedelta(minutes=2), defect=True)
    frame_at(first, now - dt.timedelta(minutes=3), defect=False)
    frame_at(first, now - dt.timedelta(minutes=57), defect=False)
    frame_at(first, now - dt.timedelta(minutes=90), defect=True)  # before the hour: left out
    lines = defect_sparklines([first.station_id, second.station_id], now=now)
    steps = lines[first.station_id]
    assert len(steps) == 12
    assert steps[-1] == 0.5 and steps[0] == 0.0
    assert steps[1:-1] == [None] * 10
    assert lines[second.station_id] == [None] * 12


def test_first_pass_yield_compares_this_shift_with_the_one_before():
    plant = scene.build()
    deployment = plant.deployments[0]
    site = deployment.station.line.plant
    factories.shift(plant_obj=site, name="Early", start=dt.time(6), end=dt.time(14))
    factories.shift(plant_obj=site, name="Late", start=dt.time(14), end=dt.time(22))
    factories.shift(plant_obj=site, name="Night", start=dt.time(22), end=dt.time(6))
    local = dt.datetime(2026, 11, 30, 15, 0, tzinfo=site.tzinfo)  # Late shift
    for minutes, defect in ((10, True), (20, False), (30, False), (40, False)):
        frame_at(deployment, local + dt.timedelta(minutes=minutes), defect=defect)
    for minutes, defect in ((-150, True), (-90, False)):  # Early shift, same day
        frame_at(deployment, local + dt.timedelta(minutes=minutes), defect=defect)
    now, before = line_yield(deployment.station.line, now=local + dt.timedelta(hours=1))
    assert (now.shift, now.frames, now.first_pass_yield) == ("Late", 4, 0.75)
    assert (before.shift, before.frames, before.first_pass_yield) == ("Early", 2, 0.5)


def test_without_shifts_there_is_no_yield_by_shift():
    plant = scene.build()
    assert line_yield(plant.line) is None
