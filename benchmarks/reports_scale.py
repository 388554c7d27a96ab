"""Reports at scale: the reports over 30 and 120 days at 1M and 20M inspections (PostgreSQL),
both sizes in the same run, interleaved, so the machine's load weighs on both alike.

Each size has its own database (``linesight_scale_1m``, ``linesight_scale_20m``;
never the test or demo database), kept between runs: it is generated only when
missing or not of its size, or with ``--regenerate`` (20M takes ~half an hour).
Generation fills 120 days of inspections in bulk on the server
(``INSERT ... SELECT`` over ``generate_series``, one statement per day: the
same bulk path as COPY, without shipping 20M rows through Python), plus a
verification for every decided frame and a superseded one for a share of them.

Then, for both sizes:

- builds the rollups (``rollups_rebuild``) unless built (``--rebuild-rollups``:
  again) and says how long it took; sets the watermark of a live plant (the
  refresh ran 30 s before the data's end, so the reports' tail is the frames
  and decisions of the last minutes);
- says what the default ("current") mode reads: the touched station-hours and
  their raw rows (and the raw rows it read before: whole station-days);
- times the summary, Pareto, trend (volume by day) and per-station reports
  over the last 30 and the last 120 days in each mode (``--modes``): median of
  5 in ms, the sizes alternated call by call, the order flipped each repeat;
- times the frame INSERT (one row in its transaction, as the frame service
  writes it; p50 of 300, alternating the sizes frame by frame) and two
  recent-frame reads (a station's latest 50 frames, the oldest 50 pending);

and prints each figure at both sizes with the ratio.

    nice -n 10 .venv/bin/python benchmarks/reports_scale.py                 # 1M and 20M
    nice -n 10 .venv/bin/python benchmarks/reports_scale.py --generate-only
    nice -n 10 .venv/bin/python benchmarks/reports_scale.py --modes rollups,current,raw

Modes: ``rollups`` (daily rollups only, ``LINESIGHT_REPORTS_CURRENT=false``),
``current`` (the default: rollups plus the raw rows of the touched
station-hours), ``current-by-day`` (the same tail read as whole station-days,
as before the hourly rollups), ``raw`` (the raw query only; slow at 20M).
"""

import argparse
import contextlib
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DAYS = 120
LAST_DAY = dt.date(2026, 3, 31)  # the period holds the spring DST change of Europe/Paris
RUNS = 5
REPORTS = ("summary", "pareto", "trend", "per-station")


def database_name(size: int) -> str:
    """Each size keeps its own database between runs (20M takes ~half an hour to make)."""
    label = f"{size // 1_000_000}m" if size % 1_000_000 == 0 else str(size)
    return f"linesight_scale_{label}"


def configure(first_database: str) -> None:
    os.environ["LINESIGHT_DEBUG"] = "true"
    os.environ["LINESIGHT_LOG_LEVEL"] = "WARNING"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{first_database}"
    os.environ["LINESIGHT_DATA_DIR"] = str(Path(tempfile.gettempdir()) / "reports-scale")
    Path(os.environ["LINESIGHT_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def create_database(name: str, *, fresh: bool) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as c:
        exists = c.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and fresh:
            c.execute(f"DROP DATABASE {name} WITH (FORCE)")
            exists = None
        if not exists:
            c.execute(f"CREATE DATABASE {name}")


class Databases:
    """One open connection per database, swapped in as Django's default connection, so
    one process can alternate between the 1M and the 20M database call by call (the
    machine's load then weighs on both alike) without reconnecting."""

    def __init__(self, names: list[str]) -> None:
        from django.db import connections

        self._connections = connections
        settings = connections.settings["default"]
        # No pool: Django keeps one pool per alias, which both databases would share.
        options = {k: v for k, v in settings["OPTIONS"].items() if k != "pool"}
        backend = type(connections["default"])
        connections["default"].close()
        self.wrappers = {
            name: backend({**settings, "NAME": name, "OPTIONS": options}, "default")
            for name in names
        }

    def use(self, name: str) -> None:
        wrapper = self.wrappers[name]
        self._connections._connections.default = wrapper

    def check(self, name: str) -> None:
        """Fail unless the default connection really is on ``name``."""
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            found = cursor.fetchone()[0]
        if found != name:
            raise RuntimeError(f"connected to {found}, expected {name}")

    def close(self) -> None:
        for wrapper in self.wrappers.values():
            wrapper.close()


def nice_backend() -> None:
    """Run this connection's server process at nice 10 too (generation is server-side SQL)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with contextlib.suppress(OSError):  # not allowed here: the server keeps its priority
        os.setpriority(os.PRIO_PROCESS, pid, max(os.getpriority(os.PRIO_PROCESS, pid), 10))


# --- Data -------------------------------------------------------------------------


def master_data() -> dict:
    """One plant in Europe/Paris, 4 lines of 3 stations, 5 products, 6 defect types,
    two model versions, three shifts (the night one crosses midnight), 8 inspectors."""
    from django.contrib.auth.models import User

    from masterdata.models import DefectType, Line, Plant, Product, Shift, Station
    from models_registry.models import Deployment, MLModel, ModelVersion

    plant = Plant.objects.filter(code="BENCH").first()
    if plant is None:
        plant = Plant.objects.create(code="BENCH", name="Bench plant", time_zone="Europe/Paris")
        for name, start, end in (("Early", 6, 14), ("Late", 14, 22), ("Night", 22, 6)):
            Shift.objects.create(plant=plant, name=name, start=dt.time(start), end=dt.time(end))
        for i, severity in enumerate(["critical", "major", "major", "minor", "minor", "minor"]):
            DefectType.objects.create(code=f"d{i}", name=f"Defect {i}", severity=severity)
        model = MLModel.objects.create(name="bench")
        labels = ["ok", *(f"d{i}" for i in range(6))]
        versions = [
            ModelVersion.objects.create(
                model=model,
                number=n,
                artifact="models/bench/model.zip",
                artifact_format="savedmodel_zip",
                sha256=f"{n:064x}",
                size_bytes=4,
                labels=labels,
                status="ready",
            )
            for n in (1, 2)
        ]
        for i in range(4):
            line = Line.objects.create(code=f"BL{i}", plant=plant)
            for j in range(3):
                station = Station.objects.create(code=f"BS{i}{j}", line=line)
                Deployment.objects.create(
                    station=station, version=versions[(i + j) % 2], is_active=True
                )
        for i in range(5):
            Product.objects.create(sku=f"BSKU{i}", name=f"Bench product {i}")
        for i in range(8):
            User.objects.create(username=f"bench-inspector-{i}")
    shifts = {s.name: s.pk for s in plant.shifts.all()}
    return {
        "plant": plant,
        "deployments": list(
            Deployment.objects.filter(is_active=True)
            .select_related("station")
            .order_by("station__code")
        ),
        "products": list(Product.objects.order_by("sku").values_list("pk", flat=True)),
        "defects": list(DefectType.objects.order_by("code").values_list("pk", flat=True)),
        "shifts": shifts,
        "inspectors": list(
            User.objects.filter(username__startswith="bench-inspector-").values_list(
                "pk", flat=True
            )
        ),
    }


def _array(values) -> str:
    return "ARRAY[" + ",".join(str(int(v)) for v in values) + "]"


# One million frames over the 120 days: random station, product and time; 80 % pass
# (5 % of them sampled for review), 12 % fail, 8 % review; 90 % of the frames sent
# to review are decided (confirm, reject or correct), the rest wait.
FRAMES_SQL = """
INSERT INTO inspection_inspection (
    station_id, line_id, deployment_id, model_version_id, product_id, source, verdict, label,
    defect_type_id, confidence, top_k, latency_ms, review_status, review_reason,
    edge_rechecked, server_label, edge_disagreement, final_defect_type_id, final_is_defect,
    verified_at, image, image_sha256, image_content_type, image_width, image_height,
    serial, lot, idempotency_key, captured_at, received_at, local_date, shift_id, shift_date
)
SELECT station, line, deployment, version, product, 'server', verdict,
    COALESCE('d' || (defect_index - 1), 'ok'), defect, 0.9, '[]'::jsonb, 3.0, status, reason,
    false, '', false, final, final IS NOT NULL,
    CASE WHEN status = 'verified' THEN captured_at + interval '10 minutes' END,
    'frames/bench.jpg', '', 'image/jpeg', 64, 48, '', '', '', captured_at,
    captured_at + interval '100 milliseconds', local_date,
    CASE WHEN local_hour >= 6 AND local_hour < 14 THEN {early}
         WHEN local_hour >= 14 AND local_hour < 22 THEN {late} ELSE {night} END,
    CASE WHEN local_hour < 6 THEN local_date - 1 ELSE local_date END
FROM (
    SELECT *, CASE WHEN status <> 'verified' THEN defect
                   WHEN r2 < 0.6 THEN defect WHEN r2 < 0.75 THEN NULL
                   ELSE ({defects})[d2 + 1] END AS final
    FROM (
        SELECT *, CASE WHEN verdict = 'pass' AND reason = '' THEN 'not_required'
                       WHEN r2 < 0.9 THEN 'verified' ELSE 'pending' END AS status,
               ({defects})[defect_index] AS defect
        FROM (
            SELECT *, ({stations})[s + 1] AS station, ({lines})[s + 1] AS line,
                   ({deployments})[s + 1] AS deployment, ({versions})[s + 1] AS version,
                   ({products})[p + 1] AS product,
                   CASE WHEN r1 < 0.8 THEN 'pass' WHEN r1 < 0.92 THEN 'fail'
                        ELSE 'review' END AS verdict,
                   CASE WHEN r1 < 0.8 THEN (CASE WHEN r3 < 0.05 THEN 'sampled_pass' ELSE '' END)
                        WHEN r1 < 0.92 THEN 'defect' ELSE 'low_confidence' END AS reason,
                   CASE WHEN r1 < 0.8 OR (r1 >= 0.92 AND r3 < 0.3) THEN NULL
                        ELSE d1 + 1 END AS defect_index,
                   (captured_at AT TIME ZONE 'Europe/Paris')::date AS local_date,
                   extract(hour FROM captured_at AT TIME ZONE 'Europe/Paris') AS local_hour
            FROM (
                SELECT %(start)s::timestamptz + random() * %(span)s * interval '1 second'
                           AS captured_at,
                       floor(random() * {n_stations})::int AS s,
                       floor(random() * {n_products})::int AS p,
                       floor(random() * {n_defects})::int AS d1,
                       floor(random() * {n_defects})::int AS d2,
                       random() AS r1, random() AS r2, random() AS r3
                FROM generate_series(1, %(rows)s)
            ) drawn
        ) judged
    ) reviewed
) decided
ORDER BY captured_at
"""

# One decision per decided frame (its final word), and for a tenth of them an earlier
# decision it superseded (a correction by a colleague, or an undo).
DECISIONS_SQL = """
INSERT INTO inspection_verification (
    inspection_id, inspector_id, decision, defect_type_id, comment, time_spent_ms, created_at
)
SELECT id, ({inspectors})[1 + (id %% {n_inspectors})],
    CASE WHEN final_defect_type_id IS NOT DISTINCT FROM defect_type_id THEN 'confirm'
         WHEN final_defect_type_id IS NULL THEN 'reject' ELSE 'correct' END,
    final_defect_type_id, '', 2000 + id %% 5000, verified_at
FROM inspection_inspection WHERE id > %(after)s AND review_status = 'verified'
UNION ALL
SELECT id, ({inspectors})[1 + ((id + 3) %% {n_inspectors})], 'confirm', defect_type_id, '',
    1500, verified_at - interval '2 minutes'
FROM inspection_inspection WHERE id > %(after)s AND review_status = 'verified' AND id %% 10 = 0
"""


def fill(world: dict, rows: int) -> float:
    """Replace the frames by ``rows`` frames (and their decisions) over the 120 days, day by
    day in capture order as a line writes them; seconds taken.

    Foreign keys are not checked while loading (``session_replication_role``):
    the generator draws them from the master data; that check is the frame
    INSERT's, which is measured on its own.
    """
    from django.db import connection

    deployments = world["deployments"]
    names = {
        "stations": _array(d.station_id for d in deployments),
        "lines": _array(d.station.line_id for d in deployments),
        "deployments": _array(d.pk for d in deployments),
        "versions": _array(d.version_id for d in deployments),
        "products": _array(world["products"]),
        "defects": _array(world["defects"]),
        "inspectors": _array(world["inspectors"]),
        "n_stations": len(deployments),
        "n_products": len(world["products"]),
        "n_defects": len(world["defects"]),
        "n_inspectors": len(world["inspectors"]),
        "early": world["shifts"]["Early"],
        "late": world["shifts"]["Late"],
        "night": world["shifts"]["Night"],
    }
    zone = world["plant"].tzinfo
    frames_sql, decisions_sql = FRAMES_SQL.format(**names), DECISIONS_SQL.format(**names)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE inspection_verification, inspection_inspection, reports_volumerollup, "
            "reports_defectrollup, reports_callrollup, reports_hourlyvolumerollup, "
            "reports_hourlydefectrollup, reports_hourlycallrollup, reports_rollupstate "
            "RESTART IDENTITY CASCADE"
        )
        cursor.execute("SET session_replication_role = replica")
        for index in range(DAYS):
            day = LAST_DAY - dt.timedelta(days=DAYS - 1 - index)
            start = dt.datetime.combine(day, dt.time(), tzinfo=zone)
            end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone)
            count = rows * (index + 1) // DAYS - rows * index // DAYS
            cursor.execute("SELECT COALESCE(MAX(id), 0) FROM inspection_inspection")
            after = cursor.fetchone()[0]
            span = (end - start).total_seconds()
            cursor.execute(frames_sql, {"start": start, "span": span, "rows": count})
            cursor.execute(decisions_sql, {"after": after})
        cursor.execute("SET session_replication_role = DEFAULT")
        cursor.execute("ANALYZE")
    return time.perf_counter() - started


def frame_count() -> int:
    from inspection.models import Inspection

    return Inspection.objects.count()


# --- Measures ---------------------------------------------------------------------

MODES = {
    "rollups": "daily rollups only (LINESIGHT_REPORTS_CURRENT=false)",
    "current": "the default: rollups + the raw rows of the touched station-hours",
    "current-by-day": "as before this change: touched station-days read raw whole",
    "raw": "the raw query only",
}
# A live plant: the refresh ran 30 s before the end of the last day; the reports read
# what was touched since then minus the overlap (the frames and decisions of the last
# minutes: the hour being written, on every station).
LIVE_LAG = dt.timedelta(seconds=30)


def day_end(world: dict) -> dt.datetime:
    return dt.datetime.combine(
        LAST_DAY + dt.timedelta(days=1), dt.time(), tzinfo=world["plant"].tzinfo
    )


def build_rollups(world: dict, *, again: bool) -> float | None:
    """Build every rollup unless built (or ``again``); seconds taken (None: kept). Then set
    the watermark of a live plant, LIVE_LAG before the end of the data."""
    from reports.models import RollupState
    from reports.rollups import STATE_NAME, rollups_rebuild

    state = RollupState.objects.filter(name=STATE_NAME).first()
    seconds = None
    if again or state is None or state.hourly_from is None:
        started = time.perf_counter()
        for _ in rollups_rebuild():
            pass
        seconds = time.perf_counter() - started
    RollupState.objects.filter(name=STATE_NAME).update(rolled_up_to=day_end(world) - LIVE_LAG)
    return seconds


def rollup_sizes() -> dict:
    from reports.models import CallRollup, DefectRollup, HourlyCallRollup, VolumeRollup

    return {
        "volume rollup rows": VolumeRollup.objects.count(),
        "defect rollup rows": DefectRollup.objects.count(),
        "call rollup rows": CallRollup.objects.count(),
        "hourly call rollup rows": HourlyCallRollup.objects.count(),
    }


def report_params(days: int) -> dict:
    return {
        "from": (LAST_DAY - dt.timedelta(days=days - 1)).isoformat(),
        "to": LAST_DAY.isoformat(),
    }


def what_current_reads(days: int) -> dict:
    """The tail of the default mode over the last ``days``: station-hours and raw rows."""
    from inspection.models import Inspection
    from reports import rollups
    from reports.filters import report_filters

    sources = rollups.report_sources(report_filters(report_params(days)))
    hours, whole_days = sources.tail_hours, sources.tail_days
    raw = Inspection.objects.filter(
        rollups.hours_q(hours, rollup=False) | rollups.buckets_q(whole_days)
    )
    day_rows = Inspection.objects.filter(rollups.buckets_q(rollups.station_days(sources.tail)))
    return {
        "tail station-hours": len(hours),
        "tail station-days read whole": len(whole_days),
        "raw rows read (current)": raw.count() if sources.tail else 0,
        "raw rows read (current-by-day)": day_rows.count() if sources.tail else 0,
    }


def report_call(report, days: int, mode: str):
    """``report`` over the last ``days`` in ``mode`` as a call; fresh filters each call, so
    each finds where its figures come from (one query for the tail), as a request does."""
    import dataclasses

    from django.conf import settings

    from reports import rollups
    from reports.filters import report_filters

    params = report_params(days)

    def call():
        settings.LINESIGHT["REPORTS_CURRENT"] = mode != "rollups"
        filters = report_filters(params)
        if mode == "raw":
            with rollups.raw_rows_only():
                return report(filters)
        if mode == "current-by-day":
            # The same tail, read as whole station-days (no hourly window).
            found = rollups.report_sources(filters)
            filters.__dict__[rollups.SOURCES_ATTRIBUTE] = dataclasses.replace(
                found, hourly_from=None
            )
        return report(filters)

    return call


def reports() -> dict:
    from reports import selectors

    return {
        "summary": selectors.totals,
        "pareto": selectors.pareto,
        "trend": lambda f: selectors.volume(f, by="day"),
        "per-station": lambda f: selectors.volume(f, by="station"),
    }


def interleaved(databases: Databases, sizes: list[int], make_call, runs: int) -> dict:
    """Median ms of ``make_call(size)()`` per size, the sizes alternated call by call (the
    order flips every repeat), after one warm-up call each (a plant's cache is warm)."""
    calls = {}
    for size in sizes:
        databases.use(database_name(size))
        calls[size] = make_call(size)
        calls[size]()
    times: dict[int, list[float]] = {size: [] for size in sizes}
    for repeat in range(runs):
        for size in sizes if repeat % 2 == 0 else sizes[::-1]:
            databases.use(database_name(size))
            started = time.perf_counter()
            calls[size]()
            times[size].append((time.perf_counter() - started) * 1000)
    return {size: statistics.median(values) for size, values in times.items()}


def frame_insert(world: dict, i: int) -> int:
    """Write one frame's row in its own transaction, as the frame service does; its id."""
    from django.db import transaction
    from django.utils import timezone

    from inspection.models import Inspection
    from masterdata.selectors import plant_time

    deployment = world["deployments"][0]
    now = timezone.now()
    local = plant_time(world["plant"], now, world["shift_rows"])
    with transaction.atomic():
        return Inspection.objects.create(
            station_id=deployment.station_id,
            line_id=deployment.station.line_id,
            deployment=deployment,
            model_version_id=deployment.version_id,
            verdict="pass",
            label="ok",
            confidence=0.97,
            top_k=[{"label": "ok", "confidence": 0.97}],
            latency_ms=3.0,
            image=f"frames/bench/insert-{i}.jpg",
            image_sha256="0" * 64,
            image_content_type="image/jpeg",
            image_width=64,
            image_height=48,
            captured_at=now,
            local_date=local.local_date,
            shift=local.shift,
            shift_date=local.shift_date,
            idempotency_key=f"bench-{now.timestamp()}-{i}",
        ).pk


def frame_insert_p50(databases: Databases, worlds: dict, count: int = 300) -> dict:
    """p50 ms of one frame INSERT per size, the sizes alternated frame by frame."""
    from inspection.models import Inspection

    sizes = sorted(worlds)
    times: dict[int, list[float]] = {size: [] for size in sizes}
    made: dict[int, list[int]] = {size: [] for size in sizes}
    for i in range(count):
        for size in sizes if i % 2 == 0 else sizes[::-1]:
            databases.use(database_name(size))
            started = time.perf_counter()
            made[size].append(frame_insert(worlds[size], i))
            times[size].append((time.perf_counter() - started) * 1000)
    for size in sizes:
        databases.use(database_name(size))
        Inspection.objects.filter(pk__in=made[size]).delete()
    return {size: statistics.median(values) for size, values in times.items()}


def recent_reads(world: dict) -> dict:
    from inspection.models import Inspection

    station = world["deployments"][0].station_id
    return {
        "latest 50 of a station": lambda: list(
            Inspection.objects.filter(station_id=station)
            .order_by("-captured_at", "-id")
            .values_list("id", flat=True)[:50]
        ),
        "oldest 50 pending": lambda: list(
            Inspection.objects.filter(review_status="pending")
            .order_by("captured_at", "id")
            .values_list("id", flat=True)[:50]
        ),
    }


def measure_interleaved(
    databases: Databases, worlds: dict, *, modes: list[str], rebuild: bool
) -> dict:
    """Every figure by size: {figure name: {size: value}}."""
    sizes = sorted(worlds)
    results: dict[str, dict[int, float]] = {}

    def put(name: str, size: int, value) -> None:
        results.setdefault(name, {})[size] = value

    for size in sizes:
        databases.use(database_name(size))
        world = worlds[size]
        world["shift_rows"] = list(world["plant"].shifts.all())
        seconds = build_rollups(world, again=rebuild)
        if seconds is not None:
            put("rollup rebuild s", size, seconds)
        for name, value in rollup_sizes().items():
            put(name, size, value)
        for days in (30, 120):
            for name, value in what_current_reads(days).items():
                put(f"{name}, {days} d", size, value)
    for mode in modes:
        for days in (30, 120):
            for name, report in reports().items():
                figures = interleaved(
                    databases,
                    sizes,
                    lambda size, r=report, d=days, m=mode: report_call(r, d, m),
                    RUNS,
                )
                for size, value in figures.items():
                    put(f"{name} {days} d ({mode}) ms", size, value)
                print(f"  measured {name} {days} d ({mode})", flush=True)
    for size, value in frame_insert_p50(databases, worlds).items():
        put("frame INSERT p50 ms", size, value)
    for name in recent_reads(worlds[sizes[0]]):
        figures = interleaved(
            databases, sizes, lambda size, n=name: recent_reads(worlds[size])[n], 21
        )
        for size, value in figures.items():
            put(f"{name} ms", size, value)
    return results


def print_results(results: dict, sizes: list[int]) -> None:
    labels = [f"{size // 1_000_000}M" if size % 1_000_000 == 0 else str(size) for size in sizes]
    header = f"{'figure (median)':<46}" + "".join(f"{label:>12}" for label in labels)
    if len(sizes) > 1:
        header += f"{labels[-1] + '/' + labels[0]:>10}"
    print(header)
    for name, by_size in results.items():
        line = f"{name:<46}"
        for size in sizes:
            value = by_size.get(size)
            line += f"{'-':>12}" if value is None else f"{value:>12.1f}"
        small, large = by_size.get(sizes[0]), by_size.get(sizes[-1])
        if len(sizes) > 1 and small and large is not None and name.endswith("ms"):
            line += f"{large / small:>9.2f}x"
        print(line, flush=True)


def prepare(databases: Databases, sizes: list[int]) -> dict:
    """Migrate each size's database and fill it unless it already holds that many frames;
    the master data of each, by size."""
    from django.core.management import call_command

    worlds = {}
    for size in sizes:
        databases.use(database_name(size))
        databases.check(database_name(size))
        call_command("migrate", verbosity=0)
        worlds[size] = master_data()
        if frame_count() != size:
            nice_backend()
            seconds = fill(worlds[size], size)
            print(f"data: {size:,} frames generated in {seconds:.0f} s", flush=True)
        print(f"{database_name(size)}: {size:,} inspections over {DAYS} days", flush=True)
    return worlds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,20000000", help="Comma-separated sizes.")
    parser.add_argument(
        "--regenerate", action="store_true", help="Drop and generate the databases again."
    )
    parser.add_argument(
        "--generate-only", action="store_true", help="Make the databases, measure nothing."
    )
    parser.add_argument(
        "--rebuild-rollups",
        action="store_true",
        help="Rebuild the rollups even if built (and time it).",
    )
    parser.add_argument(
        "--modes",
        default="rollups,current,current-by-day",
        help=f"Comma-separated among: {', '.join(MODES)} (raw: slow at 20M).",
    )
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    for size in sizes:
        create_database(database_name(size), fresh=args.regenerate)
    configure(database_name(sizes[0]))
    databases = Databases([database_name(size) for size in sizes])
    worlds = prepare(databases, sizes)
    if args.generate_only:
        return
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown mode(s): {', '.join(sorted(unknown))}")
    results = measure_interleaved(databases, worlds, modes=modes, rebuild=args.rebuild_rollups)
    print_results(results, sizes)


if __name__ == "__main__":
    main()
