"""Reports at scale: the reports over 30 and 120 days at 1M and 20M inspections (PostgreSQL).

Fills the database ``linesight_bench`` (created and migrated by this script,
never the test or demo database) with inspections over 120 days, generated in
bulk by the server (``INSERT ... SELECT`` over ``generate_series``, one
statement per day: the same bulk path as COPY, without shipping 20M rows
through Python), plus a verification for every decided frame and a
superseded one for a share of them. Then, at each size:

- builds the rollups (``rollups_rebuild``) and says how long it took;
- times the summary, Pareto, trend (volume by day) and per-station reports
  over the last 30 and the last 120 days: median of 5, in ms, from the rollups
  (all station-days rolled up) and with the last day's station-days read from
  the raw rows (a live plant: today is always being refreshed);
- times the frame INSERT (one row in its transaction, as the frame service
  writes it; p50 of 300) and two recent-frame reads (a station's latest 50
  frames, the oldest 50 pending reviews);

and prints the 20M/1M ratio of each figure at the end. Each size is generated
afresh (``TRUNCATE``, then day by day in capture order, as a line writes).

    .venv/bin/python benchmarks/reports_scale.py                    # 1M and 20M
    .venv/bin/python benchmarks/reports_scale.py --sizes 1000000,5000000
    .venv/bin/python benchmarks/reports_scale.py --raw              # the raw query too

``--raw`` also times the same reports read from the raw rows only (the cost
before rollups; slow at 20M).
"""

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB = "linesight_bench"
PG_URL = f"postgres://postgres@127.0.0.1:5432/{DB}"
DAYS = 120
LAST_DAY = dt.date(2026, 3, 31)  # the period holds the spring DST change of Europe/Paris
RUNS = 5
REPORTS = ("summary", "pareto", "trend", "per-station")


def configure() -> None:
    os.environ["LINESIGHT_DEBUG"] = "true"
    os.environ["LINESIGHT_LOG_LEVEL"] = "WARNING"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DATABASE_URL"] = PG_URL
    os.environ["LINESIGHT_DATA_DIR"] = str(Path(tempfile.gettempdir()) / "reports-scale")
    Path(os.environ["LINESIGHT_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def create_database(fresh: bool) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        exists = c.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB]).fetchone()
        if exists and fresh:
            c.execute(f"DROP DATABASE {DB} WITH (FORCE)")
            exists = None
        if not exists:
            c.execute(f"CREATE DATABASE {DB}")


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
            "reports_defectrollup, reports_callrollup, reports_rollupstate RESTART IDENTITY CASCADE"
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


def median_ms(call, runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def report_calls(days: int, *, mode: str) -> dict:
    """Each report as a call over the last ``days``; ``mode``: rollups, live or raw.

    Fresh filters each call, so each finds where its figures come from, as a request does.
    """
    from reports import rollups, selectors
    from reports.filters import report_filters

    params = {
        "from": (LAST_DAY - dt.timedelta(days=days - 1)).isoformat(),
        "to": LAST_DAY.isoformat(),
    }
    last_day = frozenset(
        rollups.touched_buckets(None, dates=(LAST_DAY, LAST_DAY))
    )  # a live plant: today's station-days are read from the raw rows

    def filters():
        made = report_filters(params)
        if mode == "live":
            made.__dict__[rollups.SOURCES_ATTRIBUTE] = rollups.ReportSources(
                rolled_up_to=rollups.rolled_up_to(), tail=last_day, raw_only=False
            )
        return made

    def run(report):
        def call():
            if mode == "raw":
                with rollups.raw_rows_only():
                    return report(filters())
            return report(filters())

        return call

    return {
        "summary": run(selectors.totals),
        "pareto": run(selectors.pareto),
        "trend": run(lambda f: selectors.volume(f, by="day")),
        "per-station": run(lambda f: selectors.volume(f, by="station")),
    }


def frame_insert_p50(world: dict, count: int = 300) -> float:
    """p50 ms of writing one frame's row in its own transaction, as the frame service does."""
    from django.db import transaction
    from django.utils import timezone

    from inspection.models import Inspection
    from masterdata.selectors import plant_time

    deployment = world["deployments"][0]
    shifts = list(world["plant"].shifts.all())
    times, made = [], []
    for i in range(count):
        now = timezone.now()
        local = plant_time(world["plant"], now, shifts)
        started = time.perf_counter()
        with transaction.atomic():
            row = Inspection.objects.create(
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
            )
        times.append((time.perf_counter() - started) * 1000)
        made.append(row.pk)
    Inspection.objects.filter(pk__in=made).delete()
    return statistics.median(times)


def recent_reads(world: dict) -> dict:
    from inspection.models import Inspection

    station = world["deployments"][0].station_id
    return {
        "latest 50 of a station": median_ms(
            lambda: list(
                Inspection.objects.filter(station_id=station)
                .order_by("-captured_at", "-id")
                .values_list("id", flat=True)[:50]
            ),
            runs=21,
        ),
        "oldest 50 pending": median_ms(
            lambda: list(
                Inspection.objects.filter(review_status="pending")
                .order_by("captured_at", "id")
                .values_list("id", flat=True)[:50]
            ),
            runs=21,
        ),
    }


def measure(world: dict, raw: bool) -> dict:
    from reports.models import CallRollup, DefectRollup, VolumeRollup
    from reports.rollups import rollups_rebuild

    started = time.perf_counter()
    for _ in rollups_rebuild():
        pass
    figures = {
        "rollup rebuild s": time.perf_counter() - started,
        "volume rollup rows": VolumeRollup.objects.count(),
        "defect rollup rows": DefectRollup.objects.count(),
        "call rollup rows": CallRollup.objects.count(),
    }
    modes = ("rollups", "live", "raw") if raw else ("rollups", "live")
    for mode in modes:
        for days in (30, 120):
            for name, call in report_calls(days, mode=mode).items():
                call()  # warm the cache, as a plant's database is
                figures[f"{name} {days} d ({mode}) ms"] = median_ms(call)
    figures["frame INSERT p50 ms"] = frame_insert_p50(world)
    for name, value in recent_reads(world).items():
        figures[f"{name} ms"] = value
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,20000000", help="Comma-separated sizes.")
    parser.add_argument("--fresh", action="store_true", help="Drop the database first.")
    parser.add_argument("--raw", action="store_true", help="Also time the raw-only reports.")
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    create_database(args.fresh)
    configure()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    world = master_data()
    results = {}
    for size in sizes:
        if frame_count() != size:
            seconds = fill(world, size)
            print(f"data: {size:,} frames generated in {seconds:.0f} s", flush=True)
        print(f"--- {frame_count():,} inspections over {DAYS} days", flush=True)
        results[size] = measure(world, args.raw)
        for name, value in results[size].items():
            print(f"  {name:<40} {value:>10.1f}", flush=True)
    if len(sizes) > 1:
        small, large = results[sizes[0]], results[sizes[-1]]
        print(f"--- ratio {sizes[-1]:,} / {sizes[0]:,}")
        for name in small:
            if small[name]:
                print(f"  {name:<40} {large[name] / small[name]:>10.2f}x")


if __name__ == "__main__":
    main()
