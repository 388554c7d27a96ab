"""Retention at scale (issue 15): time to apply, rows and files deleted per second, and the
frame p50 while it runs against without.

On a PostgreSQL database of its own (``retention_bench``, dropped and created) it:

1. registers a tiny colour classifier for one station (validated like a user's model)
   and starts the production server (uvicorn, ``--workers``);
2. writes ``--rows`` inspections over ``--days`` days with bulk ``COPY`` (80 % passes,
   12 % fails, 8 % reviews, all verified but 1 % still pending), every row with
   ``image_bytes``; ``--files`` of them get a real file on disk (the others name a file
   that is not there, which the storage deletes just the same);
3. posts ``--frames`` frames one after another: the frame p50 without retention (before
   the run and again after it: the machine's noise);
4. runs ``manage.py retention`` in another process (policy: passes 30 days with 1 %
   sampled, other images 60 days, rows 90 days, so every stage has work) while posting
   frames the whole time: the frame p50 while it runs, the time to apply, rows and
   images removed per second, and the real files gone.

    .venv/bin/python benchmarks/retention.py --rows 1000000 --files 20000

Over the 20M rows of ``benchmarks/reports_scale.py`` instead of generated ones:
``--from-database linesight_scale_20m`` copies that database
(``CREATE DATABASE retention_bench TEMPLATE linesight_scale_20m``; the source is
left intact) and applies the policy ``--policy PASS,KEPT,ROWS`` (days) to its
plant, posting frames to a station of a plant of its own meanwhile.
``--seconds`` stops the run after that long (the counts so far are kept: each
batch is counted as it commits). The copied rows name a file that is not on
disk, so no real file is deleted there.

    nice -n 10 .venv/bin/python benchmarks/retention.py --from-database linesight_scale_20m \
        --policy 359,361,362
"""

import argparse
import datetime as dt
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"


def setup_environment(args, data_dir: Path) -> None:
    import psycopg

    if args.from_database == args.database:
        raise SystemExit("--from-database must not be the benchmark's own database")
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {args.database}")
        if args.from_database:
            started = time.perf_counter()
            conn.execute(
                f"CREATE DATABASE {args.database} TEMPLATE {args.from_database} "
                "STRATEGY FILE_COPY"  # a plain file copy: no WAL for the whole database
            )
            print(f"copied {args.from_database} in {time.perf_counter() - started:.0f} s")
        else:
            conn.execute(f"CREATE DATABASE {args.database}")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": ADMIN_URL.rsplit("/", 1)[0] + f"/{args.database}",
            "LINESIGHT_SECRET_KEY": "benchmark-" + "r" * 50,
            "LINESIGHT_DATA_DIR": str(data_dir),
            "LINESIGHT_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LINESIGHT_LOG_LEVEL": "WARNING",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "LINESIGHT_STATION_FRAME_RATE": "0",
        }
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)


def register_station(line, data_dir: Path):
    """A tiny colour classifier, uploaded and validated, deployed to station RB1."""
    from django.core.files import File

    from masterdata.models import Station
    from masterdata.services import station_token_rotate
    from models_registry.services import (
        deployment_activate,
        label_mappings_update,
        model_create,
        version_upload,
    )
    from models_registry.validation import validate_version_now
    from tests import tf_models

    artifact = data_dir / "colour.zip"
    artifact.write_bytes(
        tf_models.savedmodel_zip(tf_models.colour_classifier(), labels=tf_models.DEFAULT_LABELS)
    )
    model = model_create(name="colour")
    with artifact.open("rb") as handle:
        version = version_upload(model=model, artifact=File(handle, name=artifact.name))
    version = validate_version_now(version.pk)
    if version.status != "ready":
        raise SystemExit(f"model: {version.status}: {version.status_reason}")
    from masterdata.models import DefectType

    for code in ("missing_cap", "crack"):
        DefectType.objects.get_or_create(code=code, defaults={"name": code})
    label_mappings_update(
        version=version, mapping={"ok": None, "missing_cap": "missing_cap", "crack": "crack"}
    )
    station = Station.objects.create(code="RB1", line=line)
    token = station_token_rotate(station=station)
    deployment = deployment_activate(station=station, version=version, confidence_threshold=0.5)
    return station, deployment, token


# --- Data ------------------------------------------------------------------------------

COLUMNS = [
    "id",
    "station_id",
    "line_id",
    "deployment_id",
    "model_version_id",
    "source",
    "verdict",
    "label",
    "confidence",
    "top_k",
    "latency_ms",
    "review_status",
    "review_reason",
    "edge_rechecked",
    "server_label",
    "edge_disagreement",
    "final_is_defect",
    "verified_at",
    "image",
    "image_bytes",
    "image_sha256",
    "image_content_type",
    "image_width",
    "image_height",
    "serial",
    "lot",
    "idempotency_key",
    "captured_at",
    "received_at",
    "local_date",
]


def _row(pk: int, when: dt.datetime, deployment, rng: random.Random, image: str) -> tuple:
    roll = rng.random()
    verdict = "pass" if roll < 0.80 else "fail" if roll < 0.92 else "review"
    status = "not_required" if verdict == "pass" else "verified"
    verified_at = when + dt.timedelta(minutes=5) if verdict != "pass" else None
    if verdict != "pass" and rng.random() < 0.01:
        status, verified_at = "pending", None
    return (
        pk,
        deployment.station_id,
        deployment.station.line_id,
        deployment.pk,
        deployment.version_id,
        "server",
        verdict,
        "ok" if verdict == "pass" else "crack",
        0.9,
        "[]",
        4.0,
        status,
        "",
        False,
        "",
        False,
        verdict == "fail",
        verified_at,
        image,
        150_000,
        "0" * 64,
        "image/jpeg",
        640,
        480,
        "",
        "",
        "",
        when,
        when,
        when.date(),
    )


def generate(args, deployment, media: Path) -> float:
    """COPY ``--rows`` rows over ``--days`` days, ids in time order; returns seconds."""
    from django.db import connection

    rng = random.Random(15)
    started = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    first = now - dt.timedelta(days=args.days)
    step = (args.days * 86400 - 3600) / args.rows
    with_file = set(rng.sample(range(1, args.rows + 1), min(args.files, args.rows)))
    body = b"\xff\xd8" + b"\0" * 2048 + b"\xff\xd9"
    columns = ", ".join(f'"{c}"' for c in COLUMNS)
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY inspection_inspection ({columns}) FROM STDIN") as copy:
            for pk in range(1, args.rows + 1):
                when = first + dt.timedelta(seconds=pk * step)
                name = f"frames/{when:%Y/%m/%d}/RB1/{pk:09d}.jpg"
                if pk in with_file:
                    path = media / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(body)
                copy.write_row(_row(pk, when, deployment, rng, name))
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('inspection_inspection', 'id'), %s)",
            [args.rows],
        )
        cursor.execute("ANALYZE inspection_inspection")
    return time.perf_counter() - started


# --- Frames ----------------------------------------------------------------------------


def frame_body(image: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="station"\r\n\r\nRB1\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
        f'filename="f.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'.encode(),
        image,
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def post_frames(port: int, token: str, images: list[bytes], stop) -> list[float]:
    """Post frames one after another until ``stop()``; their latencies in ms."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    bodies = [frame_body(image) for image in images]
    latencies, i = [], 0
    while not stop(i):
        body, content_type = bodies[i % len(bodies)]
        started = time.perf_counter()
        conn.request(
            "POST",
            "/api/v1/inspections/",
            body,
            {"Authorization": f"Token {token}", "Content-Type": content_type},
        )
        response = conn.getresponse()
        response.read()
        if response.status != 201:
            raise SystemExit(f"frame refused: {response.status}")
        latencies.append((time.perf_counter() - started) * 1000)
        i += 1
    conn.close()
    return latencies


def wait_healthy(port: int) -> None:
    for _ in range(300):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"nothing answers on port {port}")


def start_server(port: int, workers: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers), "--no-access-log"]
    command += ["--log-level", "warning"]
    return subprocess.Popen(command, cwd=ROOT, start_new_session=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


# --- Driver ----------------------------------------------------------------------------


def run_retention_while_posting(
    port: int, token: str, images: list[bytes], *, plants: list[str], seconds: float | None
) -> dict:
    """``manage.py retention`` in a child process while posting frames; stopped (SIGTERM)
    after ``seconds`` if given."""
    started = time.perf_counter()
    command = [sys.executable, "manage.py", "retention"]
    for code in plants:
        command += ["--plant", code]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    during: list[float] = []

    def post() -> None:
        during.extend(post_frames(port, token, images, lambda i: child.poll() is not None))

    poster = threading.Thread(target=post)
    poster.start()
    stopped = False
    try:
        output, _ = child.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        child.terminate()
        output, _ = child.communicate()
        stopped = True
    elapsed = time.perf_counter() - started
    poster.join()
    if child.returncode and not stopped:
        raise SystemExit(f"retention failed: {output}")
    note = f"stopped after {seconds:.0f} s" if stopped else ""
    return {"seconds": elapsed, "output": (output.strip() + " " + note).strip(), "during": during}


def count_files(media: Path) -> int:
    """The generated frames' files still there (not those the server wrote meanwhile)."""
    return sum(1 for p in (media / "frames").rglob("?????????.jpg") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--frames", type=int, default=300, help="frames for the baseline p50")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--pause", type=float, default=None, help="seconds between batches (default: setting)"
    )
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--database", default="retention_bench", help="dropped and created")
    parser.add_argument(
        "--from-database",
        default=None,
        help="copy this database (e.g. linesight_scale_20m) instead of generating rows",
    )
    parser.add_argument(
        "--policy",
        default="30,60,90",
        help="days: pass images, other images, rows (applied to the copied plants too)",
    )
    parser.add_argument("--seconds", type=float, default=None, help="stop the run after this")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="linesight-retention-"))
    if args.pause is not None:
        os.environ["LINESIGHT_RETENTION_PAUSE_SECONDS"] = str(args.pause)
    setup_environment(args, data_dir)
    import django

    django.setup()
    from django.db import connection

    from inspection.models import Inspection, RetentionDay, RetentionPolicy
    from masterdata.models import Line, Plant
    from models_registry.models import Deployment
    from tests.images import GREEN, RED, frame_bytes

    pass_days, kept_days, rows_days = (int(days) for days in args.policy.split(","))
    copied = list(Plant.objects.values_list("code", flat=True)) if args.from_database else []
    plant = Plant.objects.create(code="RBENCH", name="Retention bench", time_zone="UTC")
    line = Line.objects.create(code="RL1", plant=plant)
    _, deployment, token = register_station(line, data_dir)
    policy = {
        "pass_images_days": pass_days,
        "kept_images_days": kept_days,
        "rows_days": rows_days,
    }
    RetentionPolicy.objects.create(plant=plant, **policy)
    media = data_dir / "media"
    if args.from_database:
        # The frames posted meanwhile go to RBENCH; retention works on the copied plants.
        for code in copied:
            RetentionPolicy.objects.update_or_create(
                plant=Plant.objects.get(code=code), defaults=policy
            )
        # Their stations run made-up model versions: no server should load them.
        Deployment.objects.exclude(station__line__plant=plant).update(is_active=False)
        args.rows = Inspection.objects.count()
        print(f"data: {args.rows:,} rows copied from {args.from_database}")
    else:
        seconds = generate(args, deployment, media)
        print(
            f"data: {args.rows:,} rows over {args.days} days by COPY in {seconds:.0f} s "
            f"({args.rows / seconds:,.0f} rows/s), {args.files:,} real files"
        )
    with_image = Inspection.objects.exclude(image="").count()
    files_before = count_files(media)
    connection.close()

    images = [frame_bytes(colour, size=(640, 480)) for colour in (RED, GREEN)]
    server = start_server(args.port, args.workers)
    try:
        wait_healthy(args.port)
        post_frames(args.port, token, images, lambda i: i >= 30)  # warm-up
        baseline = post_frames(args.port, token, images, lambda i: i >= args.frames)
        result = run_retention_while_posting(
            args.port, token, images, plants=copied or ["RBENCH"], seconds=args.seconds
        )
        # The machine is shared: a second baseline after the run shows how noisy it is.
        after = post_frames(args.port, token, images, lambda i: i >= args.frames)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)

    from django.db.models import Sum

    day = RetentionDay.objects.filter(plant__code__in=copied or ["RBENCH"]).aggregate(
        images_deleted=Sum("images_deleted"), rows_deleted=Sum("rows_deleted")
    )
    day = argparse.Namespace(
        images_deleted=day["images_deleted"] or 0, rows_deleted=day["rows_deleted"] or 0
    )
    files_removed = files_before - count_files(media)
    elapsed = result["seconds"]
    print(f"\n{result['output']}")
    print(f"\nretention over {args.rows:,} rows ({with_image:,} with an image): {elapsed:.1f} s")
    print(
        f"  images removed: {day.images_deleted:,} ({day.images_deleted / elapsed:,.0f}/s), "
        f"of which real files {files_removed:,}"
    )
    print(f"  rows removed: {day.rows_deleted:,} ({day.rows_deleted / elapsed:,.0f}/s)")
    base = statistics.median(baseline + after)
    for name, values in (
        ("before", baseline),
        ("while it runs", result["during"]),
        ("after", after),
    ):
        print(
            f"frame p50 {name:>13}: {statistics.median(values):6.1f} ms "
            f"(p95 {pct(values, 95):6.1f}, {len(values)} frames)"
        )
    print(
        f"ratio while it runs / without (before and after): "
        f"{statistics.median(result['during']) / base:.2f}"
    )
    print(json.dumps({"rows": args.rows, "seconds": round(elapsed, 1)}))


if __name__ == "__main__":
    main()
