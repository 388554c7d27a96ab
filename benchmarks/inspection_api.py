"""Frames through the production server, as issue 3 measures them.

For each model (the demo model and a MobileNetV2 224x224 with random
weights, both registered and validated like a user's model) it prints:

- the bare runtime call (p50): the loaded classifier on a prepared frame;
- end-to-end POST latency p50/p95/p99 with one client;
- throughput with 4 concurrent clients, and errors;
- RSS of each server worker after the run;
- beside it, in the same run on the same model file and the same JPEGs (issue 12):
  the bare TFLite call (1 thread, an interpreter of its own) and the minimal
  peer (``benchmarks/minimal_peer.py``: Starlette + TFLite + one SQLite INSERT
  + the file written, one process), each figure the median of ``--rounds``
  rounds, and the product's figures as ratios against both.

The server is started as in production (`uvicorn --workers N`, production
settings) on its own database; the clients run in another process and post
640x480 JPEGs over keep-alive HTTP connections.

    .venv/bin/python benchmarks/inspection_api.py [--database postgres|sqlite] [--workers 2]
        [--rounds 3] [--no-peer]
"""

import argparse
import http.client
import json
import os
import shutil
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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# --- client process -------------------------------------------------------------


def multipart(fields: dict, image: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        disposition = f'Content-Disposition: form-data; name="{name}"'
        parts.append(f"--{boundary}\r\n{disposition}\r\n\r\n{value}\r\n".encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="f.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n".encode()
        + image
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def client_main(args) -> None:
    """Post frames and print JSON results: run in its own process."""
    spec = json.loads(args.client)
    bodies = []
    for path in spec["images"]:
        bodies.append(multipart({"station": spec["station"]}, Path(path).read_bytes()))
    headers_base = {"Authorization": f"Token {spec['token']}"}
    host, port = spec["host"], spec["port"]

    server: list[float] = []

    def worker(count: int | None, seconds: float | None, out: list, errors: list) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        deadline = time.perf_counter() + seconds if seconds else None
        i = 0
        while (count is None or i < count) and (deadline is None or time.perf_counter() < deadline):
            body, content_type = bodies[i % len(bodies)]
            started = time.perf_counter()
            try:
                conn.request(
                    "POST",
                    "/api/v1/inspections/",
                    body,
                    {**headers_base, "Content-Type": content_type},
                )
                response = conn.getresponse()
                payload = response.read()
                if response.status != 201:
                    errors.append(f"{response.status} {payload[:120]!r}")
                else:
                    out.append((time.perf_counter() - started) * 1000)
                    server.append(json.loads(payload)["latency_ms"])
            except OSError as exc:
                errors.append(str(exc))
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=30)
            i += 1
        conn.close()

    warm: list = []
    worker(spec["warmup"], None, warm, [])
    latencies: list = []
    errors: list = []
    server.clear()
    worker(spec["sequential"], None, latencies, errors)
    results = {"latencies": latencies, "errors": errors, "server_p50": statistics.median(server)}
    threads, done, conc_errors = [], [], []
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(spec["concurrency"]):
        t = threading.Thread(target=worker, args=(None, spec["seconds"], done, conc_errors))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    results.update(
        throughput=len(done) / elapsed,
        concurrent_errors=conc_errors,
        concurrent_frames=len(done),
        client_cpu=(time.process_time() - cpu_started) / elapsed,  # cores the client used
    )
    print(json.dumps(results))


# --- benchmark driver ---------------------------------------------------------------


def setup_environment(args, data_dir: Path) -> dict:
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LINESIGHT_SECRET_KEY": "benchmark-" + "b" * 50,
        "LINESIGHT_DATA_DIR": str(data_dir),
        "LINESIGHT_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LINESIGHT_LOG_LEVEL": "WARNING",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        # Every client posts for one station, far faster than a camera's 30 frames/s.
        "LINESIGHT_STATION_FRAME_RATE": "0",
    }
    if args.database == "postgres":
        import psycopg

        name = args.bench_database
        with psycopg.connect(args.postgres_admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        env["DATABASE_URL"] = args.postgres_admin_url.rsplit("/", 1)[0] + f"/{name}"
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
    os.environ.update(env)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True, env=os.environ
    )
    return env


def mobilenet_zip(tmp: Path) -> Path:
    import keras

    from tests import tf_models

    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), classes=4)
    path = tmp / "mobilenetv2.zip"
    path.write_bytes(
        tf_models.savedmodel_zip(model, labels=["ok", "missing_cap", "wrong_label", "no_label"])
    )
    return path


def register(name: str, artifact: Path, station_code: str, line) -> tuple:
    from django.core.files import File

    from masterdata.models import DefectType, Station
    from masterdata.services import station_token_rotate
    from models_registry.services import (
        deployment_activate,
        label_mappings_update,
        model_create,
        version_upload,
    )
    from models_registry.validation import validate_version_now

    model = model_create(name=name)
    with artifact.open("rb") as handle:
        version = version_upload(model=model, artifact=File(handle, name=artifact.name))
    started = time.perf_counter()
    version = validate_version_now(version.pk)
    validation_s = time.perf_counter() - started
    if version.status != "ready":
        raise SystemExit(f"{name}: {version.status}: {version.status_reason}")
    mapping = {}
    for label in version.labels:
        if label == "ok":
            mapping[label] = None
        else:
            DefectType.objects.get_or_create(code=label, defaults={"name": label})
            mapping[label] = label
    label_mappings_update(version=version, mapping=mapping)
    station = Station.objects.create(code=station_code, line=line)
    token = station_token_rotate(station=station)
    deployment_activate(station=station, version=version, confidence_threshold=0.5)
    return version, token, validation_s


def bare_call_ms(version, frame_path: Path, runs: int = 200) -> dict:
    from common.preprocessing import model_input, open_frame
    from inspection.runtime import ModelCache
    from models_registry.runtime.tensorflow import TensorFlowRuntime

    loaded = ModelCache(TensorFlowRuntime()).get(version)
    data = frame_path.read_bytes()
    batch = model_input(open_frame(data, max_pixels=10**8), loaded.preprocessing)
    model_times, frame_times = [], []
    for _ in range(runs):
        started = time.perf_counter()
        loaded.classifier.classify(batch)
        model_times.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        loaded.classify(open_frame(data, max_pixels=10**8))
        frame_times.append((time.perf_counter() - started) * 1000)
    return {
        "kind": loaded.kind,
        "model_p50": statistics.median(model_times),
        "decode_and_model_p50": statistics.median(frame_times),
    }


def bare_tflite_ms(version, frame_path: Path, runs: int = 300) -> float:
    """The bare TFLite call: an interpreter of its own (1 thread) on the version's file."""
    from ai_edge_litert.interpreter import Interpreter

    from common.preprocessing import Preprocessing, model_input, open_frame

    interpreter = Interpreter(model_path=version.tflite_artifact.path, num_threads=1)
    interpreter.allocate_tensors()
    model_in = interpreter.get_input_details()[0]
    model_out = interpreter.get_output_details()[0]
    frame = open_frame(frame_path.read_bytes(), max_pixels=10**8)
    batch = model_input(frame, Preprocessing.for_version(version)).astype(model_in["dtype"])
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        interpreter.set_tensor(model_in["index"], batch)
        interpreter.invoke()
        interpreter.get_tensor(model_out["index"])
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def start_peer(version, port: int, data_dir: Path) -> subprocess.Popen:
    """The minimal peer serving the same model file as ``version``, on ``port``."""
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "minimal_peer.py"),
        "--model",
        version.tflite_artifact.path,
        "--labels",
        ",".join(version.labels),
        "--width",
        str(version.input_width),
        "--height",
        str(version.input_height),
        "--scale",
        version.value_scale,
        "--color",
        "L" if version.color_mode == "grayscale" else "RGB",
        "--data",
        str(data_dir / f"peer-{port}"),
        "--port",
        str(port),
    ]
    return subprocess.Popen(command, cwd=ROOT, start_new_session=True)


def wait_healthy(port: int) -> None:
    import requests

    for _ in range(300):
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"nothing answers on port {port}")


def run_clients(spec: dict) -> dict:
    """One client process (1 client, then ``concurrency`` clients); its figures."""
    result = subprocess.run(
        [sys.executable, __file__, "--client", json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    latencies = figures["latencies"]
    return {
        "p50": statistics.median(latencies),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "fps": figures["throughput"],
        "client_cpu": figures["client_cpu"],
        "errors": len(figures["errors"]) + len(figures["concurrent_errors"]),
        "server_p50": figures["server_p50"],
        "first_error": (figures["errors"] + figures["concurrent_errors"] + [""])[0],
    }


def report_side_by_side(name: str, version, rounds: list[dict], concurrency: int) -> None:
    """Medians over the rounds of the bare call, the peer and the product, and their ratios."""

    def med(who: str, key: str) -> float:
        return statistics.median(r[who][key] for r in rounds)

    bare, decode = med("bare", "tflite"), med("bare", "decode")
    limit = (os.cpu_count() or 1) * 1000 / (bare + decode)
    size = f"{version.input_width}x{version.input_height}"
    print(f"{name} ({size}), medians of {len(rounds)} rounds")
    print(f"  bare TFLite call (1 thread)  p50 {bare:7.2f} ms   decode+preprocess {decode:.2f} ms")
    print(f"  machine limit                {limit:7.0f} frames/s  (cores x 1000 / (bare + decode))")
    print(f"  {'':24}{'p50':>8}{'p95':>8}{'p99':>8}{'fps':>8}{'client CPU':>12}{'errors':>8}")
    for who in ("peer", "product", "product via Django"):
        if who not in rounds[0]:
            continue
        print(
            f"  {who:24}{med(who, 'p50'):8.2f}{med(who, 'p95'):8.2f}{med(who, 'p99'):8.2f}"
            f"{med(who, 'fps'):8.1f}{med(who, 'client_cpu'):11.2f}c"
            f"{sum(r[who]['errors'] for r in rounds):8d}"
        )
    product = {key: med("product", key) for key in ("p50", "p99", "fps")}
    ratios = [
        f"p50/bare {product['p50'] / bare:.2f}x (target <= 1.6)",
        f"p99/p50 {product['p99'] / product['p50']:.2f}x (<= 2)",
        f"{concurrency}-client fps = {product['fps'] / limit:.0%} of the machine limit",
    ]
    if "peer" in rounds[0]:
        ratios[1:1] = [
            f"p50/peer {product['p50'] / med('peer', 'p50'):.2f}x (<= 1.25)",
            f"fps/peer {product['fps'] / med('peer', 'fps'):.2f}x (>= 1.3)",
        ]
    print("  product: " + "; ".join(ratios))
    if "product via Django" in rounds[0]:
        django = {key: med("product via Django", key) for key in ("p50", "fps")}
        print(
            f"  lean route vs Django's path: p50 {product['p50']:.2f} vs {django['p50']:.2f} ms "
            f"({product['p50'] / django['p50']:.2f}x), fps {product['fps']:.1f} vs "
            f"{django['fps']:.1f} ({product['fps'] / django['fps']:.2f}x)"
        )
    print(f"  product's own latency_ms p50 {med('product', 'server_p50'):.2f} ms (inside the view)")
    errors = [r[w]["first_error"] for r in rounds for w in r if r[w].get("first_error")]
    if errors:
        print(f"  e.g. {errors[0]}")


def worker_rss_mb(server_pid: int) -> list[float]:
    rss = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(server_pid):
            rss.append(int(fields["VmRSS"].split()[0]) / 1024)
    return rss


def report(name, version, validation_s, bare, figures, concurrency) -> None:
    latencies = figures["latencies"]
    p50 = statistics.median(latencies)
    errors = figures["errors"] + figures["concurrent_errors"]
    size = f"{version.input_width}x{version.input_height}"
    print(f"{name} ({size}, serving {bare['kind']}, validated in {validation_s:.1f} s)")
    print(
        f"  bare model call p50         {bare['model_p50']:7.2f} ms"
        f"   (decode + preprocess + model {bare['decode_and_model_p50']:.2f} ms)"
    )
    print(
        f"  POST, 1 client p50/p95/p99  {p50:7.2f} / {percentile(latencies, 95):.2f} / "
        f"{percentile(latencies, 99):.2f} ms   = {p50 / bare['model_p50']:.2f}x the bare call"
    )
    print(
        f"  POST, {concurrency} clients           {figures['throughput']:7.1f} frames/s "
        f"({figures['concurrent_frames']} frames)"
    )
    print(f"  server's latency_ms p50     {figures['server_p50']:7.2f} ms   (inside the view)")
    print(
        f"  errors                      {len(errors)}" + (f"   e.g. {errors[0]}" if errors else "")
    )


def profile_workers(server_pid: int, seconds: float) -> None:
    """Sample the first worker with py-spy while the clients run (needs py-spy installed)."""
    workers = [
        int(p.parent.name)
        for p in Path("/proc").glob("[0-9]*/status")
        if f"PPid:\t{server_pid}\n" in p.read_text()
    ] or [server_pid]
    out = Path(tempfile.gettempdir()) / "linesight-worker.speedscope.txt"
    subprocess.Popen(
        [
            "py-spy",
            "record",
            "--pid",
            str(workers[-1]),
            "--duration",
            str(int(seconds)),
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ]
    )
    print(f"profiling worker {workers[-1]} into {out}")


def side_by_side(args, models: dict, images: list[str], port: int, peers: dict) -> None:
    """Bare call, peer and product, one after the other, ``--rounds`` times; medians."""
    print(
        f"\nSide by side (issue 12): product = uvicorn {args.workers} workers, {args.database}"
        f"{', Redis layer' if args.redis_url else ''}; peer = minimal_peer.py (1 process, "
        "SQLite); frames 640x480 JPEG\n"
    )
    for name, (version, token, _) in models.items():
        rounds = []
        for _ in range(args.rounds):
            bare = bare_call_ms(version, Path(images[0]))
            figures = {
                "bare": {
                    "tflite": bare_tflite_ms(version, Path(images[0])),
                    "decode": bare["decode_and_model_p50"] - bare["model_p50"],
                }
            }
            targets = {"product": port}
            if args.compare_django:
                targets["product via Django"] = port + 10
            if name in peers:
                targets = {"peer": peers[name][0], **targets}
            for who, target in targets.items():
                spec = {
                    "host": "127.0.0.1",
                    "port": target,
                    "token": token,
                    "station": f"B-{name}",
                    "images": images,
                    "warmup": 40,
                    "sequential": args.sequential,
                    "concurrency": args.concurrency,
                    "seconds": args.seconds,
                }
                figures[who] = run_clients(spec)
            rounds.append(figures)
        report_side_by_side(name, version, rounds, args.concurrency)


def start_server(app: str, port: int, workers: int) -> subprocess.Popen:
    """uvicorn with ``workers`` processes serving ``app``, as in production."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=os.environ,
        start_new_session=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument(
        "--postgres-admin-url", default="postgres://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sequential", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--models", default="demo,mobilenetv2")
    parser.add_argument("--port", type=int, default=8765, help="the product; peers on the next")
    parser.add_argument("--bench-database", default="linesight_bench", help="dropped and created")
    parser.add_argument("--rounds", type=int, default=3, help="figures are medians of rounds")
    parser.add_argument("--no-peer", action="store_true", help="skip the minimal peer")
    parser.add_argument(
        "--compare-django",
        action="store_true",
        help="also serve every request through Django (no lean frame route) on port + 10, "
        "and measure it beside the product",
    )
    parser.add_argument("--profile-seconds", type=float, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args)
        return

    data_dir = Path(tempfile.mkdtemp(prefix="linesight-bench-"))
    setup_environment(args, data_dir)
    import django

    django.setup()
    from demo import frames as demo_frames
    from masterdata.models import Line, Plant

    plant = Plant.objects.create(code="BENCH", name="Benchmark plant", time_zone="Europe/Paris")
    line = Line.objects.create(code="BL1", plant=plant)

    frames_dir = data_dir / "frames"
    demo_frames.write_frames(frames_dir, per_class=8, seed=7)
    images = sorted(str(p) for p in frames_dir.rglob("*.jpg"))

    models = {}
    for name in args.models.split(","):
        if name == "mobilenetv2":
            artifact = mobilenet_zip(data_dir)
        elif name == "demo":
            from demo.seed import demo_artifact

            # The cached demo model of var/demo (trained once if missing).
            artifact, _ = demo_artifact(demo_dir=ROOT / "var" / "demo", log=print)
        else:
            raise SystemExit(f"unknown model {name}")
        models[name] = register(name, artifact, f"B-{name}", line)

    bare = {
        name: bare_call_ms(version, Path(images[0])) for name, (version, _, _) in models.items()
    }
    peers = {}
    if not args.no_peer:
        for offset, (name, (version, _, _)) in enumerate(models.items()):
            peer_port = args.port + 1 + offset
            peers[name] = (peer_port, start_peer(version, peer_port, data_dir))

    port = args.port
    server = start_server("config.asgi:application", port, args.workers)
    servers = [server]
    if args.compare_django:
        servers.append(
            start_server("benchmarks.asgi_django_only:application", port + 10, args.workers)
        )
    try:
        for peer_port, _ in peers.values():
            wait_healthy(peer_port)
        wait_healthy(port)
        if args.compare_django:
            wait_healthy(port + 10)
        time.sleep(2)  # let every worker finish warming its models
        if args.profile_seconds:
            profile_workers(server.pid, args.profile_seconds)
        print(
            f"\nServer: uvicorn, {args.workers} workers, {args.database}, "
            f"{'Redis' if args.redis_url else 'in-memory'} layer; "
            "frames 640x480 JPEG\n"
        )
        if args.rounds:
            side_by_side(args, models, images, port, peers)
        single_run = {} if args.rounds else models  # --rounds 0: one run, the earlier report
        for name, (version, token, validation_s) in single_run.items():
            spec = {
                "host": "127.0.0.1",
                "port": port,
                "token": token,
                "station": f"B-{name}",
                "images": images,
                "warmup": 40,
                "sequential": args.sequential,
                "concurrency": args.concurrency,
                "seconds": args.seconds,
            }
            result = subprocess.run(
                [sys.executable, __file__, "--client", json.dumps(spec)],
                capture_output=True,
                text=True,
                cwd=ROOT,
                env=os.environ,
                check=True,
            )
            figures = json.loads(result.stdout.strip().splitlines()[-1])
            report(name, version, validation_s, bare[name], figures, args.concurrency)
        rss = worker_rss_mb(server.pid)
        print(f"\nworker RSS: {', '.join(f'{r:.0f} MB' for r in rss)}")
    finally:
        for _, peer in peers.values():
            peer.terminate()
            peer.wait(timeout=30)
        for started in servers:
            started.terminate()
            started.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
