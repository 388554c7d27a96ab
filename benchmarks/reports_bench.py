"""Report benchmark: summary and Pareto times, xlsx rows/s and memory, CSV memory over 1M rows.

Fills a database of its own (never the test or demo database) with bulk-made
inspections and verifications, then measures, printing medians:

- the summary (totals) and the Pareto over the whole period (target < 1 s each);
- the workbook of ~100,000 raw rows in a child process: rows/s (target >= 8,000)
  and the child's peak RSS (target < 250 MB), against bare openpyxl writing the
  same number of rows in the same run;
- the CSV of every row streamed in a child process: rows/s, and peak RSS against
  a CSV of a tenth of the rows (flat memory: a ratio close to 1).

``--writers`` (no database) instead times the raw sheet's rows written through
``reports.xlsx_rows.FastRows`` against openpyxl's public write-only API: why
the exports keep the one adapter that uses openpyxl's private stream.

    .venv/bin/python benchmarks/reports_bench.py --db sqlite
    .venv/bin/python benchmarks/reports_bench.py --writers --writer-rows 200000
    .venv/bin/python benchmarks/reports_bench.py --db postgres
    .venv/bin/python benchmarks/reports_bench.py --inspections 100000 --verifications 10000

SQLite lives in $TMPDIR/reports-bench-sqlite/; PostgreSQL in the database
``reports_bench`` on 127.0.0.1 (created when missing). Data is reused when the
database already holds the requested sizes; ``--regenerate`` starts again.
"""

import argparse
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAYS = 30
LAST_DAY = dt.date(2026, 3, 31)  # the period holds the spring DST change of Europe/Paris
PG_URL = "postgres://postgres@127.0.0.1:5432/reports_bench"


def configure(db: str) -> None:
    os.environ["LINESIGHT_DEBUG"] = "true"
    os.environ["LINESIGHT_LOG_LEVEL"] = "WARNING"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    if db == "postgres":
        os.environ["DATABASE_URL"] = PG_URL
        os.environ["LINESIGHT_DATA_DIR"] = str(Path(tempfile.gettempdir()) / "reports-bench-pg")
    else:
        os.environ.pop("DATABASE_URL", None)
        os.environ["LINESIGHT_DATA_DIR"] = str(Path(tempfile.gettempdir()) / "reports-bench-sqlite")
    Path(os.environ["LINESIGHT_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def ensure_postgres_database() -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = 'reports_bench'").fetchone():
            c.execute("CREATE DATABASE reports_bench")


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM).

    Not getrusage's ru_maxrss: Linux carries that over fork and exec, so a
    child would report the parent's peak from generating the data.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


# --- Data -------------------------------------------------------------------------


def generate(inspections: int, verifications: int, regenerate: bool) -> None:
    from django.core.management import call_command
    from django.db import connection, transaction

    from inspection.models import Inspection, Verification

    call_command("migrate", verbosity=0)
    if not regenerate and (
        Inspection.objects.count() == inspections and Verification.objects.count() == verifications
    ):
        print(f"data: reusing {inspections:,} inspections, {verifications:,} verifications")
        return
    Verification.objects.all().delete()
    Inspection.objects.all().delete()
    started = time.perf_counter()
    world = master_data()
    rng = random.Random(5)
    verified_ids = set(rng.sample(range(1, inspections + 1), verifications))
    # Frames arrive in time order, as from the API: ids follow capture times.
    offsets = sorted(rng.randrange(DAYS * 86400) for _ in range(inspections))
    frames, decisions = RowWriter(Inspection), RowWriter(Verification)
    with transaction.atomic():
        for pk in range(1, inspections + 1):
            frame, decision = make_frame(pk, offsets[pk - 1], world, rng, pk in verified_ids)
            frames.add(frame)
            if decision is not None:
                decisions.add(decision)
        frames.flush()
        decisions.flush()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for table in ("inspection_inspection", "inspection_verification"):
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - fixed table names
                    f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"
                )
            cursor.execute("ANALYZE")
    else:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    print(
        f"data: generated {inspections:,} inspections and {decisions.written:,} verifications "
        f"in {time.perf_counter() - started:.0f} s"
    )


class RowWriter:
    """Bulk rows straight into a table: executemany on SQLite, COPY on PostgreSQL.

    Rows are dicts of field attnames; missing fields take the model's default.
    Faster than bulk_create by skipping model instances, which matters at 1M rows.
    """

    def __init__(self, model, batch: int = 20_000) -> None:
        from django.db import connection

        self.connection = connection
        self.model = model
        self.fields = model._meta.concrete_fields
        self.defaults = {f.attname: f.get_default() for f in self.fields}
        self.columns = [f.column for f in self.fields]
        self.kinds = [f.get_internal_type() for f in self.fields]
        self.rows: list[tuple] = []
        self.batch = batch
        self.written = 0

    def add(self, values: dict) -> None:
        row = {**self.defaults, **values}
        self.rows.append(tuple(row[f.attname] for f in self.fields))
        if len(self.rows) >= self.batch:
            self.flush()

    def _sqlite(self, value, kind):
        if value is None:
            return None
        if kind == "DateTimeField":
            return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ")
        if kind == "DateField":
            return value.isoformat()
        if kind == "JSONField":
            return json.dumps(value)
        if kind == "TimeField":
            return value.isoformat()
        return value

    def flush(self) -> None:
        if not self.rows:
            return
        table = self.model._meta.db_table
        columns = ", ".join(f'"{c}"' for c in self.columns)
        with self.connection.cursor() as cursor:
            if self.connection.vendor == "postgresql":
                with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in self.rows:
                        copy.write_row(
                            [
                                json.dumps(v) if k == "JSONField" else v
                                for v, k in zip(row, self.kinds, strict=True)
                            ]
                        )
            else:
                marks = ", ".join(["%s"] * len(self.columns))
                cursor.executemany(
                    f"INSERT INTO {table} ({columns}) VALUES ({marks})",  # noqa: S608 - the model's own names
                    [
                        [self._sqlite(v, k) for v, k in zip(row, self.kinds, strict=True)]
                        for row in self.rows
                    ],
                )
        self.written += len(self.rows)
        self.rows = []


def master_data() -> dict:
    from django.contrib.auth.models import User

    from masterdata.models import DefectType, Line, Plant, Product, Shift, Station
    from models_registry.models import Deployment, LabelMapping, MLModel, ModelVersion

    for model in (Deployment, LabelMapping, ModelVersion, MLModel, Station, Line, Shift):
        model.objects.all().delete()
    Product.objects.all().delete()
    Plant.objects.all().delete()
    plant = Plant.objects.create(code="BENCH", name="Bench plant", time_zone="Europe/Paris")
    shifts = [
        Shift.objects.create(plant=plant, name="Early", start=dt.time(6), end=dt.time(14)),
        Shift.objects.create(plant=plant, name="Late", start=dt.time(14), end=dt.time(22)),
        Shift.objects.create(plant=plant, name="Night", start=dt.time(22), end=dt.time(6)),
    ]
    severities = ["critical", "major", "major", "minor", "minor", "minor"]
    defects = [
        DefectType.objects.update_or_create(
            code=f"defect-{i}", defaults={"name": f"Defect {i}", "severity": severity}
        )[0]
        for i, severity in enumerate(severities)
    ]
    model = MLModel.objects.create(name="bench")
    versions = []
    for number in (1, 2):
        version = ModelVersion.objects.create(
            model=model,
            number=number,
            artifact="models/bench/model.zip",
            artifact_format="savedmodel_zip",
            sha256=f"{number:064x}",
            size_bytes=4,
            labels=["ok", *(d.code for d in defects)],
            status="ready",
        )
        versions.append(version)
    lines, stations, deployments = [], [], []
    for i in range(4):
        line = Line.objects.create(code=f"BL{i}", plant=plant)
        lines.append(line)
        for j in range(3):
            station = Station.objects.create(code=f"BS{i}{j}", line=line)
            stations.append(station)
            deployments.append(
                Deployment.objects.create(
                    station=station, version=versions[(i + j) % 2], is_active=True
                )
            )
    products = []
    for i in range(5):
        product = Product.objects.create(sku=f"BSKU{i}", name=f"Bench product {i}")
        product.lines.set(lines)
        products.append(product)
    inspectors = []
    for i in range(8):
        user, _ = User.objects.get_or_create(username=f"bench-inspector-{i}")
        inspectors.append(user)
    return {
        "plant": plant,
        "shifts": shifts,
        "defects": defects,
        "deployments": deployments,
        "products": products,
        "inspectors": inspectors,
    }


def make_frame(pk: int, seconds: int, world: dict, rng: random.Random, verified: bool):
    from masterdata.selectors import shift_at

    zone = world["plant"].tzinfo
    first = dt.datetime.combine(LAST_DAY - dt.timedelta(days=DAYS - 1), dt.time(), tzinfo=zone)
    captured = (first.astimezone(dt.UTC) + dt.timedelta(seconds=seconds)).astimezone(dt.UTC)
    local = captured.astimezone(zone)
    shift, shift_date = shift_at(world["shifts"], local)
    deployment = world["deployments"][pk % len(world["deployments"])]
    roll = rng.random()
    defects = world["defects"]
    if roll < 0.80:
        verdict, defect, reason = "pass", None, ""
        status = "not_required"
        if rng.random() < 0.05:
            reason, status = "sampled_pass", "pending"
    elif roll < 0.92:
        verdict, defect, reason, status = "fail", rng.choice(defects), "defect", "pending"
    else:
        verdict, reason, status = "review", "low_confidence", "pending"
        defect = rng.choice([None, *defects])
    final = defect
    decision = None
    verified_at = None
    if verified:
        status = "verified"
        choice = rng.random()
        if choice < 0.7:
            kind, final = "confirm", defect
        elif choice < 0.85:
            kind, final = "reject", None
        else:
            kind, final = "correct", rng.choice(defects)
        verified_at = captured + dt.timedelta(seconds=rng.randrange(60, 7200))
        decision = {
            "id": pk,  # one decision per verified frame
            "inspection_id": pk,
            "inspector_id": rng.choice(world["inspectors"]).pk,
            "decision": kind,
            "defect_type_id": final.pk if final else None,
            "comment": "",
            "time_spent_ms": rng.randrange(500, 15000),
            "created_at": verified_at,
        }
    frame = {
        "id": pk,
        "station_id": deployment.station_id,
        "line_id": deployment.station.line_id,
        "product_id": world["products"][pk % 5].pk,
        "deployment_id": deployment.pk,
        "model_version_id": deployment.version_id,
        "source": "server",
        "verdict": verdict,
        "label": defect.code if defect else "ok",
        "defect_type_id": defect.pk if defect else None,
        "confidence": round(rng.random(), 4),
        "top_k": [],
        "latency_ms": 4.2,
        "review_status": status,
        "review_reason": reason,
        "final_defect_type_id": final.pk if final else None,
        "final_is_defect": final is not None,
        "verified_at": verified_at,
        "image": "frames/bench.jpg",
        "image_sha256": "0" * 64,
        "image_content_type": "image/jpeg",
        "image_width": 640,
        "image_height": 480,
        "serial": f"SN{pk:09d}",
        "lot": f"LOT{pk // 10000}",
        "captured_at": captured,
        "received_at": captured,
        "local_date": local.date(),
        "shift_id": shift.pk if shift else None,
        "shift_date": shift_date,
    }
    return frame, decision


# --- Measures (each child process measures one thing) ----------------------------------


def filters_for(days: int):
    from reports.filters import report_filters

    start = LAST_DAY - dt.timedelta(days=days - 1)
    return report_filters({"from": start.isoformat(), "to": LAST_DAY.isoformat()})


def measure_queries(runs: int) -> dict:
    from reports import selectors

    filters = filters_for(DAYS)
    filters.time_zone  # noqa: B018 - resolved outside the timings
    selectors.date_index_pays(filters)  # decided outside the timings
    results = {}
    for name, call in (
        ("summary", lambda: selectors.totals(filters)),
        ("pareto", lambda: selectors.pareto(filters)),
        ("by_day", lambda: selectors.volume(filters, by="day")),
        ("by_shift", lambda: selectors.volume(filters, by="shift")),
        ("model_versions", lambda: selectors.model_versions(filters)),
        ("inspectors", lambda: selectors.inspectors(filters)),
    ):
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        results[name] = statistics.median(times)
    results["frames"] = selectors.totals(filters)["frames"]
    return results


def child_xlsx(days: int) -> dict:
    from reports import exports, selectors

    filters = filters_for(days)
    raw_rows = selectors.inspections(filters).count()
    before = rss_mb()
    path = Path(os.environ["LINESIGHT_DATA_DIR"]) / "bench.xlsx"
    started = time.perf_counter()
    written = exports.write_workbook(filters, str(path))
    elapsed = time.perf_counter() - started
    return {
        "raw_rows": raw_rows,
        "rows_written": written,
        "seconds": elapsed,
        "rows_per_s": raw_rows / elapsed,
        "all_rows_per_s": written / elapsed,
        "rss_before_mb": before,
        "peak_rss_mb": peak_rss_mb(),
        "bytes": path.stat().st_size,
    }


def child_openpyxl_baseline(rows: int) -> dict:
    """Bare openpyxl write-only: the same number of rows of the raw sheet's shape."""
    from openpyxl import Workbook

    # One row of the raw sheet's shape, in wall-clock time as the export writes it.
    sample = [
        value.replace(tzinfo=None) if isinstance(value, dt.datetime) else value
        for value in next(raw_sample_rows(1))
    ]
    book = Workbook(write_only=True)
    sheet = book.create_sheet("raw")
    started = time.perf_counter()
    for _ in range(rows):
        sheet.append(sample)
    book.save(Path(os.environ["LINESIGHT_DATA_DIR"]) / "baseline.xlsx")
    elapsed = time.perf_counter() - started
    return {"rows_per_s": rows / elapsed, "peak_rss_mb": peak_rss_mb()}


def child_csv(days: int) -> dict:
    from reports import exports, selectors

    filters = filters_for(days)
    rows = selectors.inspections(filters).count()
    before = rss_mb()
    samples = []
    size = 0
    started = time.perf_counter()
    for count, chunk in enumerate(exports.csv_chunks(filters), start=1):
        size += len(chunk)
        if count % 200 == 0:  # every 100,000 lines
            samples.append(rss_mb())
    elapsed = time.perf_counter() - started
    return {
        "rows": rows,
        "seconds": elapsed,
        "rows_per_s": rows / elapsed,
        "bytes": size,
        "rss_before_mb": before,
        "rss_samples_mb": [round(s, 1) for s in samples],
        "peak_rss_mb": peak_rss_mb(),
    }


def raw_sample_rows(rows: int):
    """Rows of the raw inspections sheet's shape; ids, times, confidences, serials differ."""
    zone = dt.timezone(dt.timedelta(hours=2))
    start = dt.datetime(2026, 3, 29, 3, 30, tzinfo=zone)
    for i in range(rows):
        captured = start + dt.timedelta(seconds=i)
        yield [
            i + 1,
            captured,
            dt.date(2026, 3, 29),
            "Night",
            dt.date(2026, 3, 28),
            "BL1",
            "BS10",
            "BSKU1",
            "bench v1",
            "fail",
            0.9 + (i % 997) / 10_000,
            "defect-1",
            "verified",
            "defect",
            "defect-1",
            True,
            captured + dt.timedelta(minutes=3),
            f"SN{i:09d}",
            "LOT0",
        ]


def write_fast(book, rows: int) -> None:
    from reports import exports

    book.row_sheets("Inspections", exports.RAW_COLUMNS, raw_sample_rows(rows))


def write_public(book, rows: int, *, styled: bool = True) -> None:
    """The public write-only API: ``WriteOnlyCell`` for dates and for text kept as text."""
    from openpyxl.cell import WriteOnlyCell

    from reports import exports

    columns = exports.RAW_COLUMNS
    sheet = book.sheet("Inspections", [column.width for column in columns])
    sheet.freeze_panes = "A2"
    sheet.append(book.header(sheet, columns))

    def cell(value):
        if isinstance(value, dt.datetime):
            value = value.replace(tzinfo=None)
            return book.cell(sheet, value, number_format=exports.DATETIME) if styled else value
        if isinstance(value, dt.date):
            return book.cell(sheet, value, number_format=exports.DATE) if styled else value
        if isinstance(value, str) and styled:
            text = WriteOnlyCell(sheet, value=value)
            text.data_type = "s"  # never a formula, as the exports promise
            return text
        return value

    for row in raw_sample_rows(rows):
        sheet.append([cell(value) for value in row])
    sheet.auto_filter.ref = f"A1:S{rows + 1}"


def measure_writers(rows: int, runs: int) -> dict:
    """Rows/s of each way to write the raw sheet (saved to a file), median of ``runs``.

    Per second of wall clock and per second of this process's CPU time: on a
    shared machine the second compares the ways fairly.
    """
    from reports import exports

    ways = {
        "fast rows (private stream)": write_fast,
        "public, WriteOnlyCell styles": write_public,
        "public, plain values (no date formats, formulas possible)": (
            lambda book, n: write_public(book, n, styled=False)
        ),
    }
    path = Path(os.environ["LINESIGHT_DATA_DIR"]) / "writers.xlsx"
    wall = {name: [] for name in ways}
    cpu = {name: [] for name in ways}
    for _ in range(runs):
        for name, write in ways.items():  # interleaved, so a busy moment hits every way
            book = exports._Book()
            started, started_cpu = time.perf_counter(), time.process_time()
            write(book, rows)
            book.workbook.save(path)
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - started_cpu)
    return {
        name: (rows / statistics.median(wall[name]), rows / statistics.median(cpu[name]))
        for name in ways
    }


def print_writers(rows: int, runs: int) -> None:
    rates = measure_writers(rows, runs)
    fast = rates["fast rows (private stream)"][1]
    print(f"\nraw sheet, {rows:,} rows of 19 columns, median of {runs}, rows/s:")
    print(f"  {'':<58} {'wall clock':>10} {'CPU time':>10}")
    for name, (wall, cpu) in rates.items():
        print(f"  {name:<58} {wall:10,.0f} {cpu:10,.0f}  ({cpu / fast:.2f} of fast rows)")
    public = rates["public, WriteOnlyCell styles"][1]
    verdict = "within" if public >= 0.85 * fast else "not within"
    print(
        f"\nThe public API is {verdict} 15 % of the private stream. openpyxl's append makes a "
        "cell object per value and writes it through nested lxml contexts; FastRows writes a "
        "row as one string. So the exports keep FastRows, the only code that touches "
        "openpyxl's private API (reports/xlsx_rows.py, tests/reports/test_xlsx_rows.py)."
        if verdict == "not within"
        else f"\nThe public API is {verdict} 15 % of the private stream: use it."
    )


def run_child(db: str, measure: str, value: int) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--db", db, "--child", measure, "--value", str(value)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def days_for_rows(total: int, rows: int) -> int:
    return max(1, min(DAYS, round(DAYS * rows / total)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--inspections", type=int, default=1_000_000)
    parser.add_argument("--verifications", type=int, default=100_000)
    parser.add_argument("--xlsx-rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--writers", action="store_true", help="Compare xlsx row writers only.")
    parser.add_argument("--writer-rows", type=int, default=200_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--value", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.db == "postgres":
        ensure_postgres_database()
    configure(args.db)
    if args.child:
        child = {"xlsx": child_xlsx, "openpyxl": child_openpyxl_baseline, "csv": child_csv}
        print(json.dumps(child[args.child](args.value)))
        return
    if args.writers:
        print_writers(args.writer_rows, 3)
        return

    generate(args.inspections, args.verifications, args.regenerate)
    queries = measure_queries(args.runs)
    print(f"\n{args.db}: {queries['frames']:,} frames over {DAYS} days, medians of {args.runs}")
    for name in ("summary", "pareto", "by_day", "by_shift", "model_versions", "inspectors"):
        target = "  (target < 1 s)" if name in {"summary", "pareto"} else ""
        print(f"  {name:<15} {queries[name] * 1000:8.1f} ms{target}")

    xlsx_days = days_for_rows(args.inspections, args.xlsx_rows)
    xlsx = [run_child(args.db, "xlsx", xlsx_days) for _ in range(3)]
    bare = [run_child(args.db, "openpyxl", xlsx[0]["raw_rows"]) for _ in range(3)]
    rate = statistics.median(r["rows_per_s"] for r in xlsx)
    bare_rate = statistics.median(r["rows_per_s"] for r in bare)
    print(
        f"\nxlsx ({xlsx_days} days: {xlsx[0]['raw_rows']:,} raw rows + "
        f"{xlsx[0]['rows_written'] - xlsx[0]['raw_rows']:,} log rows, all sheets), median of 3:"
    )
    print(f"  raw rows/s        {rate:10,.0f}  (target >= 8,000)")
    print(f"  all rows/s        {statistics.median(r['all_rows_per_s'] for r in xlsx):10,.0f}")
    print(f"  bare openpyxl     {bare_rate:10,.0f} rows/s; export / bare = {rate / bare_rate:.2f}")
    print(
        f"  peak RSS          {statistics.median(r['peak_rss_mb'] for r in xlsx):10.0f} MB "
        f"(target < 250; {statistics.median(r['rss_before_mb'] for r in xlsx):.0f} MB "
        "before the export)"
    )
    print(f"  file              {xlsx[0]['bytes'] / 2**20:10.1f} MB")

    full = run_child(args.db, "csv", DAYS)
    tenth = run_child(args.db, "csv", max(1, DAYS // 10))
    print(f"\ncsv of every row ({full['rows']:,} rows, {full['bytes'] / 2**20:.0f} MB):")
    print(f"  rows/s            {full['rows_per_s']:10,.0f}")
    print(f"  RSS every 100k    {full['rss_samples_mb']}")
    print(
        f"  peak RSS          {full['peak_rss_mb']:10.0f} MB; a tenth of the rows "
        f"({tenth['rows']:,}): {tenth['peak_rss_mb']:.0f} MB; ratio "
        f"{full['peak_rss_mb'] / tenth['peak_rss_mb']:.2f} (flat memory: close to 1)"
    )


if __name__ == "__main__":
    main()
