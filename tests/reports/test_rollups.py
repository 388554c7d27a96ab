"""Reports read rollups, and every figure equals the raw query's.

A random plant in Europe/Paris over five days around the spring DST change,
frames near local midnight, in the skipped hour and around whole hours (the
last three days are also kept by station-hour), several stations, products,
shifts and model versions, decisions, corrections, late decisions after the
rollups ran and superseding decisions (undo). Each report is computed from the
rollups (plus the raw tail) and from the raw rows alone
(``reports.rollups.raw_rows_only``), and the two must be equal.
"""

import datetime as dt
import random
import zoneinfo

import pytest
from django.core.management import call_command
from django.urls import reverse

from inspection.models import Inspection
from inspection.services import verification_record
from masterdata.selectors import plant_time
from reports import page, rollups, selectors
from reports.filters import report_filters
from reports.models import CallRollup, DefectRollup, VolumeRollup
from tests import factories

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
DAYS = [dt.date(2026, 3, 27) + dt.timedelta(days=i) for i in range(5)]  # DST on the 29th
RANGE = {"from": "2026-03-27", "to": "2026-03-31"}
LABELS = ("ok", "crack", "scratch", "dent")
DIMENSIONS = ("day", "shift", "line", "station", "product")


@pytest.fixture
def no_overlap(settings):
    """A refresh then covers everything before it: the reports read only rollups."""
    settings.LINESIGHT = {**settings.LINESIGHT, "ROLLUP_OVERLAP_SECONDS": 0}


def build_world() -> dict:
    plant = factories.plant(code="RP", time_zone="Europe/Paris")
    factories.shift(plant_obj=plant, name="Early", start=dt.time(6), end=dt.time(14))
    factories.shift(plant_obj=plant, name="Late", start=dt.time(14), end=dt.time(22))
    factories.shift(plant_obj=plant, name="Night", start=dt.time(22), end=dt.time(6))
    factories.defect_type(code="crack", severity="critical")
    factories.defect_type(code="scratch", severity="minor")
    factories.defect_type(code="dent", severity="major")
    versions = [factories.version_row(model_name="cap", labels=LABELS) for _ in range(2)]
    lines = [factories.line(code=f"RL{i}", plant_obj=plant) for i in range(2)]
    products = [factories.product(sku=f"R{i}", lines=lines) for i in range(3)]
    deployments = []
    for i in range(4):
        station = factories.station(code=f"RS{i}", line_obj=lines[i % 2])
        deployments.append(factories.deployment(station_obj=station, version=versions[i % 2]))
    inspectors = [factories.inspector(username=f"rinsp{i}") for i in range(3)]
    return {
        "plant": plant,
        "deployments": deployments,
        "products": [*products, None],
        "inspectors": inspectors,
    }


def _capture_time(rng: random.Random) -> dt.datetime:
    day = rng.choice(DAYS)
    kind = rng.random()
    if kind < 0.4:  # around local midnight
        local = dt.datetime.combine(day, dt.time(0), tzinfo=PARIS)
        local += dt.timedelta(minutes=rng.randint(-20, 20))
    elif kind < 0.55:  # around the changed hour, in wall-clock terms
        local = dt.datetime.combine(day, dt.time(1, 30), tzinfo=PARIS)
        local += dt.timedelta(minutes=rng.randint(0, 120))
    elif kind < 0.7:  # around a whole hour (the edge of an hourly bucket)
        local = dt.datetime.combine(day, dt.time(rng.randrange(24)), tzinfo=PARIS)
        local += dt.timedelta(seconds=rng.randint(-90, 90))
    else:
        local = dt.datetime.combine(day, dt.time(0), tzinfo=PARIS)
        local += dt.timedelta(seconds=rng.randrange(86400))
    return local.astimezone(dt.UTC)


def _judgement(rng: random.Random, mappings: dict) -> dict:
    verdict = rng.choice(["pass", "pass", "fail", "review"])
    label = "ok" if verdict == "pass" else rng.choice(LABELS[1:] if verdict == "fail" else LABELS)
    defect = mappings[label].defect_type
    if verdict == "pass":
        reason, status = rng.choice([("", "not_required"), ("sampled_pass", "pending")])
    elif verdict == "fail":
        reason, status = rng.choice([("defect", "pending"), ("defect", "not_required")])
    else:
        reason, status = rng.choice(["low_confidence", "edge_disagreement"]), "pending"
    return {
        "verdict": verdict,
        "label": label,
        "defect_type": defect,
        "final_defect_type": defect,
        "final_is_defect": defect is not None,
        "review_reason": reason,
        "review_status": status,
    }


def make_frames(world: dict, rng: random.Random, count: int) -> list[Inspection]:
    """``count`` frames as the API would store them (no image: reports never read it)."""
    rows = []
    for _ in range(count):
        deployment = rng.choice(world["deployments"])
        mappings = {m.label: m for m in deployment.version.mappings.select_related("defect_type")}
        captured_at = _capture_time(rng)
        when = plant_time(world["plant"], captured_at)
        rows.append(
            Inspection(
                station=deployment.station,
                line=deployment.station.line,
                product=rng.choice(world["products"]),
                deployment=deployment,
                model_version=deployment.version,
                confidence=0.9,
                latency_ms=1.0,
                image_sha256="0" * 64,
                image_content_type="image/jpeg",
                image_width=8,
                image_height=8,
                captured_at=captured_at,
                local_date=when.local_date,
                shift=when.shift,
                shift_date=when.shift_date,
                **_judgement(rng, mappings),
            )
        )
    return Inspection.objects.bulk_create(rows)


def decide_some(world: dict, rng: random.Random, frames: list[Inspection], share: float) -> int:
    """Decisions through the real service on a share of the frames: confirm, reject, correct,
    and now and then a second decision superseding the first (an undo, or a colleague)."""
    from masterdata.models import DefectType

    defects = list(DefectType.objects.filter(code__in=LABELS[1:]))
    decided = 0
    for frame in frames:
        if rng.random() >= share:
            continue
        frame.refresh_from_db()
        latest = frame.verifications.order_by("created_at", "id").last()
        for _ in range(rng.choice([1, 1, 1, 2])):
            decision = rng.choice(["confirm", "reject", "correct"])
            inspector = latest.inspector if latest and rng.random() < 0.5 else None
            latest = verification_record(
                inspection=frame,
                inspector=inspector or rng.choice(world["inspectors"]),
                decision=decision,
                defect_type=rng.choice(defects) if decision == "correct" else None,
                time_spent_ms=rng.randint(500, 9000),
                supersedes=latest,
            )
            decided += 1
    return decided


FILTER_CASES = [
    {},
    {"plant": "RP"},
    {"line": "RL1"},
    {"station": "RS2"},
    {"product": "R1"},
    {"model_version": "cap:2"},
    {"shift": "Night"},
    {"from": "2026-03-29", "to": "2026-03-29"},
    {"from": "2026-03-28", "to": "2026-03-30", "line": "RL0", "shift": "Early"},
]


def every_figure(params: dict) -> dict:
    """Every report's rows for these filters (fresh filters: nothing remembered)."""
    filters = report_filters({**RANGE, **params})
    return {
        "totals": selectors.totals(filters),
        **{f"volume_{by}": selectors.volume(filters, by=by) for by in DIMENSIONS},
        "pareto": selectors.pareto(filters),
        "model_versions": selectors.model_versions(filters),
        "agreement": selectors.agreement_by_day(filters),
    }


def assert_rollups_match_raw(cases: list[dict] = FILTER_CASES) -> None:
    for params in cases:
        from_rollups = every_figure(params)
        with rollups.raw_rows_only():
            from_raw = every_figure(params)
        for report, rows in from_raw.items():
            assert from_rollups[report] == rows, (params, report)


def frames_in_range() -> int:
    return Inspection.objects.filter(local_date__range=(DAYS[0], DAYS[-1])).count()


def sources() -> rollups.ReportSources:
    return rollups.report_sources(report_filters(RANGE))


@pytest.mark.django_db
def test_every_report_from_rollups_equals_the_raw_query(no_overlap):
    world, rng = build_world(), random.Random(15)
    frames = make_frames(world, rng, 500)
    decide_some(world, rng, frames, 0.35)
    assert sources().raw_only  # nothing rolled up yet: the raw query answers

    rollups.rollups_refresh()
    state = sources()
    assert not state.raw_only and not state.tail  # every figure from the rollups
    assert VolumeRollup.objects.count() < CallRollup.objects.count() < len(frames)
    assert every_figure({})["totals"]["frames"] == frames_in_range() > 400
    assert_rollups_match_raw()

    # After the refresh, late decisions on a few old frames (undo, colleagues): the
    # reports read their buckets from the raw rows until the next refresh, by hour
    # in the last three days, by station-day before.
    assert state.hourly_from == DAYS[2]
    decide_some(world, rng, frames[:40], 0.5)
    state = sources()
    assert state.tail_hours and state.tail_days and not state.raw_only
    assert_rollups_match_raw(FILTER_CASES[:4])
    rollups.rollups_refresh()
    assert not sources().tail
    assert_rollups_match_raw(FILTER_CASES[:4])

    # New frames after the refresh, then the refresh that rolls them up.
    make_frames(world, rng, 60)
    assert sources().tail
    assert_rollups_match_raw(FILTER_CASES[:4])
    assert every_figure({})["totals"]["frames"] == frames_in_range()
    rollups.rollups_refresh()
    assert not sources().tail
    assert_rollups_match_raw()


def _hour(frame: Inspection) -> dt.datetime:
    return frame.captured_at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


@pytest.mark.django_db
def test_a_late_decision_in_a_recent_day_reads_only_its_hour_raw(no_overlap):
    world, rng = build_world(), random.Random(11)
    frames = make_frames(world, rng, 300)
    rollups.rollups_refresh()
    recent = [f for f in frames if f.local_date >= DAYS[2] and f.review_status == "pending"]
    old = next(f for f in frames if f.local_date in DAYS[:2] and f.review_status == "pending")
    # a frame of the DST day if there is one pending
    frame = next((f for f in recent if f.local_date == DAYS[2]), recent[0])
    inspector = world["inspectors"][0]

    verification_record(inspection=frame, inspector=inspector, decision="reject")
    state = sources()
    hour_rows = Inspection.objects.filter(
        station=frame.station,
        captured_at__gte=_hour(frame),
        captured_at__lt=_hour(frame) + dt.timedelta(hours=1),
    ).count()

    assert state.tail_hours == {(frame.local_date, frame.station_id, _hour(frame))}
    assert not state.tail_days
    assert (
        0
        < hour_rows
        < Inspection.objects.filter(station=frame.station, local_date=frame.local_date).count()
    )
    assert selectors.rollup_status(report_filters(RANGE))["raw_station_hours"] == 1
    assert_rollups_match_raw()

    # A decision on a frame older than the hourly window: its whole station-day is read raw.
    verification_record(inspection=old, inspector=inspector, decision="confirm")
    state = sources()
    assert state.tail_days == {(old.local_date, old.station_id)}
    assert_rollups_match_raw()
    rollups.rollups_refresh()
    assert not sources().tail
    assert_rollups_match_raw()


@pytest.mark.django_db
def test_hourly_rollups_add_up_to_the_daily_ones(no_overlap):
    from django.db.models import Sum

    from reports.models import HourlyCallRollup, HourlyVolumeRollup

    world, rng = build_world(), random.Random(12)
    frames = make_frames(world, rng, 300)
    decide_some(world, rng, frames, 0.3)
    rollups.rollups_refresh()

    for day in DAYS:
        daily = VolumeRollup.objects.filter(local_date=day).aggregate(n=Sum("frames"))["n"]
        hourly = HourlyVolumeRollup.objects.filter(local_date=day).aggregate(n=Sum("frames"))
        raw = Inspection.objects.filter(local_date=day).count()
        assert daily == raw
        assert hourly["n"] == (raw if day >= DAYS[2] else None), day
    # The DST day has 23 hours; an hour's rows are the frames captured in that UTC hour.
    dst_hours = set(
        HourlyCallRollup.objects.filter(local_date=DAYS[2]).values_list("hour", flat=True)
    )
    assert len(dst_hours) <= 23
    for hour in dst_hours:
        assert (
            HourlyCallRollup.objects.filter(local_date=DAYS[2], hour=hour).aggregate(
                n=Sum("frames")
            )["n"]
            == Inspection.objects.filter(
                local_date=DAYS[2],
                captured_at__gte=hour,
                captured_at__lt=hour + dt.timedelta(hours=1),
            ).count()
        )


@pytest.mark.django_db
def test_the_hourly_window_follows_the_newest_day(no_overlap):
    from reports.models import HourlyVolumeRollup

    world, rng = build_world(), random.Random(13)
    frames = make_frames(world, rng, 200)
    rollups.rollups_refresh()
    assert sources().hourly_from == DAYS[2]

    # Two days later the line writes again: the window moves on, the days that left it
    # are read from the daily rollups; their hourly rows go at the next move.
    later = [dt.date(2026, 4, 2), dt.date(2026, 4, 3)]
    for day in later:
        new = make_frames(world, random.Random(day.day), 30)
        Inspection.objects.filter(pk__in=[f.pk for f in new]).update(
            local_date=day, captured_at=dt.datetime.combine(day, dt.time(10), tzinfo=dt.UTC)
        )
        rollups.rollups_refresh()
    decide_some(world, rng, frames[:30], 0.5)  # late decisions on days outside the window

    assert sources().hourly_from == later[-1] - dt.timedelta(days=2)
    assert not HourlyVolumeRollup.objects.filter(local_date__lt=DAYS[3]).exists()
    assert sources().tail_days and not sources().tail_hours
    assert_rollups_match_raw([{}, {"station": "RS1"}])
    rollups.rollups_refresh()
    every = every_figure({"from": "2026-03-27", "to": "2026-04-03"})
    with rollups.raw_rows_only():
        assert every == every_figure({"from": "2026-03-27", "to": "2026-04-03"})


@pytest.mark.django_db
def test_a_late_decision_moves_the_figures_of_its_capture_day(no_overlap):
    world, rng = build_world(), random.Random(3)
    frames = make_frames(world, rng, 40)
    rollups.rollups_refresh()
    pending = next(f for f in frames if f.review_status == "pending" and f.defect_type_id)
    day = {"from": pending.local_date.isoformat(), "to": pending.local_date.isoformat()}
    before = every_figure(day)["totals"]

    verification_record(inspection=pending, inspector=world["inspectors"][0], decision="reject")
    after_decision = every_figure(day)["totals"]  # the tail is read from the raw rows
    rollups.rollups_refresh()
    after_refresh = every_figure(day)["totals"]  # and now from the rollups

    assert after_decision["pending"] == before["pending"] - 1
    assert after_decision["defective"] == before["defective"] - 1
    assert after_refresh == after_decision


@pytest.mark.django_db
def test_rebuild_command_restores_rollups_equal_to_raw(no_overlap):
    world, rng = build_world(), random.Random(7)
    frames = make_frames(world, rng, 120)
    decide_some(world, rng, frames, 0.3)
    rollups.rollups_refresh()
    VolumeRollup.objects.filter(local_date=DAYS[2]).update(frames=999)  # damaged
    DefectRollup.objects.filter(local_date=DAYS[2]).update(confirmed=999)
    CallRollup.objects.filter(local_date=DAYS[3]).delete()  # lost

    call_command("rollups_rebuild", "--from", DAYS[2].isoformat(), "--to", DAYS[3].isoformat())

    assert_rollups_match_raw()


@pytest.mark.django_db
def test_rebuild_leaves_the_days_whose_rows_retention_deletes(no_overlap):
    from io import StringIO

    from inspection.models import RetentionPolicy
    from masterdata.models import Plant

    world, rng = build_world(), random.Random(5)
    make_frames(world, rng, 40)
    rollups.rollups_refresh()
    VolumeRollup.objects.filter(local_date=DAYS[2]).update(frames=999)  # the history kept
    RetentionPolicy.objects.create(
        plant=Plant.objects.get(code="RP"), pass_images_days=7, kept_images_days=14, rows_days=30
    )
    out = StringIO()

    call_command("rollups_rebuild", "--from", DAYS[0].isoformat(), stdout=out)

    assert "keep their rollups" in out.getvalue()
    assert VolumeRollup.objects.filter(local_date=DAYS[2], frames=999).exists()


@pytest.mark.django_db
def test_rebuild_command_refuses_a_wrong_date():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="month 13 does not exist"):
        call_command("rollups_rebuild", "--from", "2026-13-01")


@pytest.mark.django_db
def test_page_and_api_say_how_current_the_rollups_are(no_overlap, client, api_client):
    world, rng = build_world(), random.Random(1)
    make_frames(world, rng, 20)
    viewer = factories.viewer()
    client.force_login(viewer)
    api_client.force_authenticate(viewer)

    page_before = client.get(reverse("reports:page"), RANGE)
    api_before = api_client.get(reverse("reports-summary"), RANGE).json()
    rollups.rollups_refresh()
    mark = rollups.rolled_up_to()
    page_after = client.get(reverse("reports:page"), RANGE)
    api_after = api_client.get(reverse("reports-summary"), RANGE).json()

    assert "rollups are not built yet" in page_before.content.decode()
    assert api_before["rollups"]["raw_only"] is True
    local = mark.astimezone(PARIS).strftime("%Y-%m-%d %H:%M")
    assert f"Figures up to {local}" in page_after.content.decode()
    assert api_after["rollups"]["raw_only"] is False
    assert api_after["rollups"]["lag_seconds"] < 60
    assert (
        api_after["rollups"]["raw_station_days"],
        api_after["rollups"]["raw_station_hours"],
    ) == (
        0,
        0,
    )
    assert api_after["totals"]["frames"] == frames_in_range()


@pytest.mark.django_db
def test_the_refresh_is_a_periodic_job_that_rolls_up_the_frames(settings, no_overlap):
    from common.jobs import job_enqueue, job_run

    world, rng = build_world(), random.Random(4)
    make_frames(world, rng, 30)
    job = job_enqueue(kind="rollups_refresh")
    job_run(str(job.pk))
    job.refresh_from_db()

    assert settings.PERIODIC_JOBS["rollups_refresh"] > 0
    assert (job.state, job.progress) == ("done", 1.0)
    assert job.result["buckets"] == len(rollups.touched_buckets(None)) > 0
    assert not sources().raw_only
    assert every_figure({})["totals"]["frames"] == frames_in_range()


@pytest.mark.django_db
def test_page_note_is_built_from_the_status(no_overlap):
    world, rng = build_world(), random.Random(2)
    make_frames(world, rng, 5)
    rollups.rollups_refresh()
    note = page.rollup_note(report_filters(RANGE))
    assert note["raw_station_days"] == 0 and note["lag_minutes"] == 0


@pytest.mark.django_db
def test_hand_worked_figures_hold_from_the_rollups(no_overlap, known_plant, client):
    """The small plant of tests/reports/conftest.py (DST night, supersedes, pending frames)."""
    from tests.reports import expected
    from tests.reports.conftest import RANGE as KNOWN_RANGE
    from tests.reports.test_figures_agree import approx_rows

    rollups.rollups_refresh()
    client.force_login(factories.viewer())
    context = client.get(reverse("reports:page"), KNOWN_RANGE).context

    assert context["rollups"]["raw_station_days"] == 0  # every figure from the rollups
    assert context["totals"] == approx_rows([expected.TOTALS])[0]
    tables = {table["id"]: table["rows"] for table in context["tables"]}
    for by, rows in expected.VOLUME.items():
        assert tables[by] == approx_rows(rows), by
    assert context["pareto"] == approx_rows(expected.PARETO)
    assert context["agreement"] == approx_rows(expected.AGREEMENT)
    for got, want in zip(context["versions"], expected.MODEL_VERSIONS, strict=True):
        assert got["per_defect_type"] == approx_rows(want["per_defect_type"])
        assert (got["agreed"], got["false_calls"], got["escapes"]) == (
            want["agreed"],
            want["false_calls"],
            want["escapes"],
        )


@pytest.mark.django_db
def test_with_reports_current_off_figures_stand_at_the_last_refresh(settings, client):
    settings.LINESIGHT = {**settings.LINESIGHT, "REPORTS_CURRENT": False}
    world, rng = build_world(), random.Random(6)
    make_frames(world, rng, 30)
    rollups.rollups_refresh()
    rolled_up = frames_in_range()
    make_frames(world, rng, 10)  # after the refresh
    client.force_login(factories.viewer())

    before = client.get(reverse("reports:page"), RANGE)
    rollups.rollups_refresh()
    after = every_figure({})["totals"]["frames"]

    assert before.context["totals"]["frames"] == rolled_up < frames_in_range() == after
    assert before.context["rollups"]["current"] is False
    assert "appear after the next refresh" in before.content.decode()
