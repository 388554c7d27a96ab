"""The plant shape for N minutes, with swaps, restarts and a killed worker (issue 11).

Starts what a plant runs: ``uvicorn config.asgi:application --workers 2``
(production settings) on PostgreSQL and Redis, and ``manage.py run_workers``
supervised (restarted when it stops, as systemd would). Registers two
versions of a tiny real TensorFlow model (tests/tf_models.py's colour
classifier, uploaded and validated like a user's model) on several stations,
measures the saturation of the frame API (closed loop), then:

``--mode soak`` (default): frames for ``--minutes`` at 80 % of the saturation
(open loop, 640x480 JPEGs, every frame with an Idempotency-Key, retried with
the same key after 503/429, 5xx, timeouts and dropped connections, as a
device does), a deployment swap every 10 s, a uvicorn worker killed (SIGKILL),
a PostgreSQL restart, a Redis restart and a task worker killed along the
way. Then the orphans sweep, and the figures: frames sent, 201, 200
(replays), 503, other errors, duplicates, lies (stored but never
acknowledged, acknowledged but not stored), orphans before/after the
sweep, "every response names a version deployed at that moment", RSS of
each process at warm-up and at the end.

``--mode swaps``: 100 swaps (``--swaps``) on one station receiving 20
frames/s: failed frames, swap p50/p99/max.

``--mode overload``: frames at 2x the saturation for ``--seconds``, no
retries: accepted rate, p50/p99 of accepted frames (against 80 % load), and
every status seen (no 5xx but 503 allowed).

PostgreSQL and Redis: by default the script starts its own PostgreSQL
cluster (pg_createcluster, port 5433) and its own redis-server (port 6390)
and restarts those, so other users of the machine's services are not
disturbed; ``--shared-services`` uses (and restarts!) the machine's
PostgreSQL cluster and Redis on 5432/6379 as MACHINE.md starts them. Either
way the database is ``linesight_soak``, created afresh. Needs root (the
restarts) and a Debian PostgreSQL (pg_ctlcluster).

    .venv/bin/python benchmarks/soak.py [--mode soak|swaps|overload] [--minutes 10]
"""

import argparse
import heapq
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.inspection_api import multipart, percentile  # noqa: E402

PG_VERSION = (sorted(os.listdir("/etc/postgresql")) or ["15"])[-1]
PRIVATE_CLUSTER = "linesight_soak"
DATABASE = "linesight_soak"
PORT = 8790
RETRYABLE = {429, 500, 502, 503, 504}
FRAME_TIMEOUT_S = 10.0  # a device's read timeout
GIVE_UP_S = 120.0  # a device keeps a frame this long before dropping it
# A server worker grows for its first ~3 min under load (thread pool, a database connection
# per thread, allocator arenas) and is flat after: warm-up is its RSS at 3 min of age.
WARMUP_RSS_S = 180.0
IDLE_RECONNECT_S = 4.0  # uvicorn closes keep-alive connections idle for 5 s


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- client process: frames over keep-alive connections ----------------------------


class Frames:
    """Jobs (one per frame) on a heap by due time; a retry goes back on it with a delay."""

    def __init__(self, jobs: list[dict]):
        self.heap = [(job["due"], index, job) for index, job in enumerate(jobs)]
        heapq.heapify(self.heap)
        self.cond = threading.Condition()
        self.outstanding = len(jobs)

    def take(self) -> dict | None:
        with self.cond:
            while True:
                if self.outstanding == 0:
                    return None
                if self.heap and self.heap[0][0] <= time.time():
                    return heapq.heappop(self.heap)[2]
                wait = self.heap[0][0] - time.time() if self.heap else 0.5
                self.cond.wait(timeout=min(max(wait, 0.001), 0.5))

    def retry(self, job: dict, delay: float) -> None:
        with self.cond:
            heapq.heappush(self.heap, (time.time() + delay, id(job), job))
            self.cond.notify()

    def done(self) -> None:
        with self.cond:
            self.outstanding -= 1
            self.cond.notify_all()


def _post(conn, body: bytes, headers: dict) -> tuple[int | str, bytes, dict]:
    conn.request("POST", "/api/v1/inspections/", body, headers)
    response = conn.getresponse()
    return response.status, response.read(), dict(response.getheaders())


def _attempt(conn, job: dict, spec: dict, bodies: dict) -> tuple[int | str, bytes, dict, float]:
    body, content_type = bodies[job["station"], job["image"]]
    headers = {
        "Authorization": f"Token {spec['tokens'][job['station']]}",
        "Content-Type": content_type,
        "Idempotency-Key": job["key"],
    }
    started = time.time()
    try:
        status, payload, response_headers = _post(conn, body, headers)
    except (OSError, http.client.HTTPException) as exc:
        status = "timeout" if isinstance(exc, TimeoutError) else "connection"
        payload, response_headers = str(exc).encode(), {}
    return status, payload, response_headers, started


def _settle(job: dict, status, payload: bytes, started: float) -> None:
    job["end"] = time.time()
    job["final"] = status
    if status in (200, 201):
        data = json.loads(payload)
        job["version"] = data["model_version"]["version"]
        job["id"] = data["id"]
        job["latency_ms"] = (job["end"] - started) * 1000
    else:
        job["detail"] = payload[:200].decode(errors="replace")


def sender(frames: Frames, spec: dict, bodies: dict) -> None:
    """One device connection: take due frames, post them, retry them as a device does."""
    conn = http.client.HTTPConnection(spec["host"], spec["port"], timeout=FRAME_TIMEOUT_S)
    last_used = time.time()
    while (job := frames.take()) is not None:
        job.setdefault("first", time.time())
        if time.time() - last_used > IDLE_RECONNECT_S:
            conn.close()  # the server closes idle keep-alive connections; a device reconnects
        status, payload, headers, started = _attempt(conn, job, spec, bodies)
        job["attempts"].append(status)
        last_used = time.time()
        if status not in (200, 201):
            job.setdefault("why", []).append(f"{status} {payload[:70].decode(errors='replace')}")
        if not isinstance(status, int) or headers.get("connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection(spec["host"], spec["port"], timeout=FRAME_TIMEOUT_S)
        retry = status in RETRYABLE or not isinstance(status, int)
        if retry and spec["retry"] and time.time() - job["first"] < GIVE_UP_S:
            wait = float(headers.get("retry-after", 0) or 0.5)
            frames.retry(job, min(wait, 5.0) * random.uniform(0.8, 1.2))
            continue
        _settle(job, status, payload, started)
        frames.done()
    conn.close()


def open_loop_jobs(spec: dict) -> list[dict]:
    start = spec["start"]
    count = int(spec["rate"] * spec["seconds"])
    stations = list(spec["tokens"])
    return [
        {
            "key": uuid.uuid4().hex,
            "station": stations[i % len(stations)],
            "image": i % len(spec["images"]),
            "due": start + i / spec["rate"],
            "attempts": [],
        }
        for i in range(count)
    ]


def closed_loop(spec: dict, bodies: dict) -> dict:
    """``concurrency`` connections posting back to back for ``seconds``: the saturation."""
    counts: Counter = Counter()
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.time() + spec["seconds"]
    stations = list(spec["tokens"])

    def run(index: int) -> None:
        conn = http.client.HTTPConnection(spec["host"], spec["port"], timeout=FRAME_TIMEOUT_S)
        i = index
        while time.time() < stop:
            job = {"key": uuid.uuid4().hex, "station": stations[i % len(stations)]}
            job["image"] = i % len(spec["images"])
            status, _, _, started = _attempt(conn, job, spec, bodies)
            with lock:
                counts[status] += 1
            if status == 201:
                latencies.append((time.time() - started) * 1000)
            elif not isinstance(status, int):
                conn.close()
            i += spec["concurrency"]
        conn.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(spec["concurrency"])]
    began = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.time() - began
    return {"rate": counts[201] / elapsed, "statuses": dict(counts), "latencies": latencies}


def client_main(spec_path: str) -> None:
    """Run in its own process: load the frames, post them, write the results as JSON."""
    spec = json.loads(Path(spec_path).read_text())
    images = [Path(image).read_bytes() for image in spec["images"]]
    bodies = {
        (station, index): multipart({"station": station}, data)
        for station in spec["tokens"]
        for index, data in enumerate(images)
    }
    if spec["kind"] == "closed":
        result = closed_loop(spec, bodies)
    else:
        jobs = open_loop_jobs(spec)
        frames = Frames(jobs)
        threads = [
            threading.Thread(target=sender, args=(frames, spec, bodies))
            for _ in range(spec["connections"])
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        result = {"jobs": jobs}
    Path(spec["out"]).write_text(json.dumps(result))


# --- services: PostgreSQL, Redis, the server, the task workers ---------------------------


class Services:
    """PostgreSQL and Redis, private (own cluster and port) or the machine's shared ones."""

    def __init__(self, shared: bool, work: Path):
        self.shared = shared
        self.cluster = "main" if shared else PRIVATE_CLUSTER
        self.pg_port = 5432 if shared else 5433
        self.redis_port = 6379 if shared else 6390
        self.redis_dir = Path("/var/lib/redis") if shared else work / "redis"
        self.redis_log = "/var/log/redis/ci.log" if shared else str(work / "redis.log")

    def start(self) -> None:
        if not self.shared:
            self.redis_dir.mkdir(exist_ok=True)
            if (
                PRIVATE_CLUSTER
                not in subprocess.run(
                    ["pg_lsclusters", "-h"], capture_output=True, text=True, check=True
                ).stdout.split()
            ):
                subprocess.run(
                    [
                        *("pg_createcluster", PG_VERSION, PRIVATE_CLUSTER),
                        *("-p", str(self.pg_port), "--", "--auth-local=trust", "--auth-host=trust"),
                    ],
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
            self.pg("start", check=False)
            self.redis_start()
        self.wait_pg()

    def pg(self, action: str, check: bool = True) -> None:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, self.cluster, action],
            check=check,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_pg(self) -> None:
        for attempt in range(480):  # 2 min: a loaded machine starts a cluster slowly
            if attempt in (120, 240) and not self.shared:
                self.pg("start", check=False)
            if (
                subprocess.run(
                    ["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.pg_port)], check=False
                ).returncode
                == 0
            ):
                return
            time.sleep(0.25)
        raise SystemExit("PostgreSQL did not come up")

    def redis_start(self) -> None:
        subprocess.run(
            [
                *("redis-server", "--daemonize", "yes", "--bind", "127.0.0.1"),
                *("--port", str(self.redis_port), "--save", "", "--appendonly", "no"),
                *("--dir", str(self.redis_dir), "--logfile", self.redis_log),
            ],
            check=True,
        )
        for _ in range(40):
            if self.redis_ping():
                return
            time.sleep(0.25)

    def redis_ping(self) -> bool:
        return (
            subprocess.run(
                ["redis-cli", "-p", str(self.redis_port), "ping"],
                capture_output=True,
                check=False,
            ).stdout.strip()
            == b"PONG"
        )

    def redis_stop(self) -> None:
        subprocess.run(
            ["redis-cli", "-p", str(self.redis_port), "shutdown", "nosave"],
            capture_output=True,
            check=False,
        )

    def stop(self) -> None:
        if not self.shared:
            self.redis_stop()
            subprocess.run(
                ["pg_dropcluster", "--stop", PG_VERSION, PRIVATE_CLUSTER],
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    @property
    def admin_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.pg_port}/postgres"

    @property
    def database_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.pg_port}/{DATABASE}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"


def environment(services: Services, data_dir: Path) -> None:
    import psycopg

    with psycopg.connect(services.admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LINESIGHT_", "AWS_")) and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    os.environ.clear()
    os.environ.update(
        inherited,
        DJANGO_SETTINGS_MODULE="config.settings",
        LINESIGHT_SECRET_KEY="soak-" + "s" * 50,
        LINESIGHT_DATA_DIR=str(data_dir),
        LINESIGHT_ALLOWED_HOSTS="127.0.0.1,localhost",
        LINESIGHT_LOG_LEVEL="WARNING",
        DATABASE_URL=services.database_url,
        REDIS_URL=services.redis_url,
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)


class Plant:
    """The uvicorn server and ``run_workers``, each supervised, with their logs."""

    def __init__(self, data_dir: Path, workers: int):
        self.data_dir = data_dir
        self.workers = workers
        self.server: subprocess.Popen | None = None
        self.tasks: subprocess.Popen | None = None
        self.task_restarts = 0
        self._stop = threading.Event()

    def start(self) -> None:
        self.server = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "config.asgi:application"),
                *("--host", "127.0.0.1", "--port", str(PORT), "--workers", str(self.workers)),
                *("--no-access-log", "--timeout-graceful-shutdown", "20"),
            ],
            cwd=ROOT,
            stdout=(self.data_dir / "server.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._start_tasks()
        threading.Thread(target=self._supervise_tasks, daemon=True).start()
        self.wait_ready()

    def _start_tasks(self) -> None:
        self.tasks = subprocess.Popen(
            [sys.executable, "manage.py", "run_workers", "-v0"],
            cwd=ROOT,
            stdout=(self.data_dir / "workers.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _supervise_tasks(self) -> None:
        while not self._stop.wait(1.0):
            if self.tasks.poll() is not None:
                self.task_restarts += 1
                log(f"run_workers exited ({self.tasks.returncode}); restarted by the supervisor")
                self._start_tasks()

    def wait_ready(self) -> None:
        import requests

        for _ in range(600):
            try:
                healthy = requests.get(f"http://127.0.0.1:{PORT}/healthz", timeout=1).ok
                if healthy and len(self.server_workers()) >= self.workers:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise SystemExit("server not ready:\n" + (self.data_dir / "server.log").read_text())

    def server_workers(self) -> list[int]:
        return children(self.server.pid, "spawn_main")  # not multiprocessing's tracker

    def task_workers(self) -> list[int]:
        return children(self.tasks.pid)

    def stop(self) -> None:
        self._stop.set()
        for process in (self.server, self.tasks):
            if process and process.poll() is None:
                process.terminate()
        for process in (self.server, self.tasks):
            if process:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)

    def errors_logged(self) -> dict:
        counts = {}
        for name in ("server.log", "workers.log"):
            text = (self.data_dir / name).read_text(errors="replace")
            counts[name] = (text.count("Traceback"), text.count(" ERROR "))
        return counts


def _status_fields(pid: int) -> dict:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {k: v.strip() for k, v in (line.split(":", 1) for line in text.splitlines())}


def children(pid: int, cmdline: str = "") -> list[int]:
    """Live (not zombie) child processes of ``pid`` whose command line contains ``cmdline``."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _status_fields(int(entry.name))
        if fields.get("PPid") != str(pid) or fields.get("State", "Z").startswith("Z"):
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if cmdline in command:
            found.append(int(entry.name))
    return sorted(found)


def rss_mb(pid: int) -> float | None:
    value = _status_fields(pid).get("VmRSS")
    return int(value.split()[0]) / 1024 if value else None


def rss_sample(plant: Plant) -> dict[str, float]:
    """RSS of each process of the plant, keyed 'role pid'."""
    roles = {f"uvicorn master {plant.server.pid}": plant.server.pid}
    roles |= {f"uvicorn worker {pid}": pid for pid in plant.server_workers()}
    roles[f"run_workers {plant.tasks.pid}"] = plant.tasks.pid
    roles |= {f"task worker {pid}": pid for pid in plant.task_workers()}
    return {role: mb for role, pid in roles.items() if (mb := rss_mb(pid)) is not None}


# --- the line: stations, two versions of a tiny real model, an engineer -------------------


def build_line(stations: int, data_dir: Path) -> dict:
    """Plant, line, stations with device tokens, model 'soak' v1 and v2 ready; v1 deployed."""
    import django

    django.setup()
    from django.core.files.base import ContentFile

    from masterdata.models import Line, Plant
    from masterdata.models import Station as StationRow
    from masterdata.services import station_token_rotate
    from models_registry.services import deployment_activate, model_create, version_upload
    from tests import factories
    from tests.tf_models import colour_classifier, savedmodel_zip

    plant = Plant.objects.create(code="SOAK", name="Soak plant", time_zone="Europe/Paris")
    line = Line.objects.create(code="SL1", plant=plant)
    model = model_create(name="soak")
    versions = []
    for sharpness in (30.0, 20.0):  # two artifacts, two versions
        artifact = savedmodel_zip(colour_classifier(sharpness=sharpness), labels=LABELS)
        version = version_upload(model=model, artifact=ContentFile(artifact, name="m.zip"))
        versions.append(ready(version))
    tokens = {}
    for index in range(stations):
        station = StationRow.objects.create(code=f"S{index + 1}", line=line)
        tokens[station.code] = station_token_rotate(station=station)
        deployment_activate(station=station, version=versions[0], confidence_threshold=0.5)
    engineer = factories.api_token(factories.engineer(username="soak-engineer"))
    return {"tokens": tokens, "engineer": engineer, "line": line.pk}


LABELS = ["ok", "missing_cap", "crack"]


def ready(version):
    from masterdata.models import DefectType
    from models_registry.services import label_mappings_update
    from models_registry.validation import validate_version_now

    version = validate_version_now(version.pk)
    if version.status != "ready":
        raise SystemExit(f"v{version.number}: {version.status}: {version.status_reason}")
    mapping = {}
    for label in version.labels:
        if label != "ok":
            DefectType.objects.get_or_create(code=label, defaults={"name": label})
        mapping[label] = None if label == "ok" else label
    label_mappings_update(version=version, mapping=mapping)
    return version


def frame_images(data_dir: Path) -> list[str]:
    from demo import frames as demo_frames

    folder = data_dir / "frames"
    demo_frames.write_frames(folder, per_class=4, seed=11)
    return sorted(str(p) for p in folder.rglob("*.jpg"))


# --- driver: load, swaps, faults, RSS -------------------------------------------------------


def run_client(spec: dict, work: Path) -> tuple[subprocess.Popen, Path]:
    """Start the client process on ``spec``; ``client_result`` waits for its results."""
    spec_path = work / f"client-{uuid.uuid4().hex[:6]}.json"
    out = spec_path.with_suffix(".out.json")
    spec_path.write_text(json.dumps(spec | {"out": str(out)}))
    process = subprocess.Popen([sys.executable, __file__, "--client", str(spec_path)], cwd=ROOT)
    return process, out


def client_result(client: tuple[subprocess.Popen, Path]) -> dict:
    process, out = client
    if process.wait() != 0:
        raise SystemExit("the client process failed")
    return json.loads(out.read_text())


def client_spec(line: dict, images: list[str], **fields) -> dict:
    return {"host": "127.0.0.1", "port": PORT, "tokens": line["tokens"], "images": images} | fields


def saturation(line: dict, images: list[str], work: Path, seconds: float) -> dict:
    """Frames/s the plant answers 201 with 16 connections back to back (2 workers x 8)."""
    warm = client_spec(line, images, kind="closed", concurrency=16, seconds=10)
    client_result(run_client(warm, work))
    spec = client_spec(line, images, kind="closed", concurrency=16, seconds=seconds)
    return client_result(run_client(spec, work))


class Swapper(threading.Thread):
    """Alternates the deployed version (1 <-> 2) of the given stations every ``interval`` s."""

    def __init__(self, token: str, stations: list[str], interval: float, count: int | None):
        super().__init__(daemon=True)
        self.token, self.stations, self.interval, self.count = token, stations, interval, count
        self.records: list[dict] = []
        self.stop = threading.Event()

    def run(self) -> None:
        import requests

        session = requests.Session()
        session.headers["Authorization"] = f"Token {self.token}"
        number, done = 1, 0
        while not self.stop.wait(self.interval) and (self.count is None or done < self.count):
            number = 2 if number == 1 else 1
            for station in self.stations:
                self.records.append(self.swap(session, station, number))
            done += 1

    @staticmethod
    def swap(session, station: str, number: int) -> dict:
        """One swap, retried after 503 and dropped connections for up to 60 s (an engineer's
        script would); the record keeps every answer."""
        import requests

        started, answers = time.time(), []
        while True:
            try:
                response = session.post(
                    f"http://127.0.0.1:{PORT}/api/v1/deployments/",
                    json={"station": station, "model": "soak", "version": number},
                    timeout=30,
                )
                answers.append(response.status_code)
            except requests.RequestException as exc:
                answers.append(type(exc).__name__)
            if answers[-1] not in (503, "ConnectionError") or time.time() - started > 60:
                break
            time.sleep(1.0)
        return {"station": station, "start": started, "end": time.time(), "version": number} | {
            "status": answers[-1],
            "answers": answers,
        }


class RssSampler(threading.Thread):
    def __init__(self, plant: Plant, every: float = 10.0):
        super().__init__(daemon=True)
        self.plant, self.every = plant, every
        self.samples: list[tuple[float, dict]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while True:
            self.samples.append((time.time(), rss_sample(self.plant)))
            if self.stop.wait(self.every):
                self.samples.append((time.time(), rss_sample(self.plant)))
                return

    def table(self) -> list[tuple[str, float, float, float]]:
        """(process, RSS at warm-up, RSS at the end, seconds it lived in the run)."""
        first_seen: dict[str, float] = {}
        rows: dict[str, list] = {}
        for at, sample in self.samples:
            for role, mb in sample.items():
                first_seen.setdefault(role, at)
                row = rows.setdefault(role, [None, mb, 0.0])
                if row[0] is None and at - first_seen[role] >= WARMUP_RSS_S:
                    row[0] = mb
                row[1], row[2] = mb, at - first_seen[role]
        return [(role, warm, end, lived) for role, (warm, end, lived) in rows.items()]


def timed(name: str, action) -> dict:
    started = time.time()
    detail = action()
    took = time.time() - started
    log(f"{name}: {took:.1f} s {detail or ''}")
    return {"name": name, "start": started, "end": time.time(), "detail": detail}


def kill_server_worker(plant: Plant) -> str:
    victim = plant.server_workers()[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.time() + 60
    while time.time() < deadline:
        alive = plant.server_workers()
        if victim not in alive and len(alive) >= plant.workers:
            return f"(killed {victim}; uvicorn replaced it)"
        time.sleep(0.2)
    return f"(killed {victim}; NOT replaced within 60 s)"


def kill_task_worker(plant: Plant) -> str:
    victim = plant.task_workers()[0]
    os.kill(victim, signal.SIGKILL)
    return f"(killed task worker {victim})"


def restart_redis(services: Services) -> str:
    services.redis_stop()
    time.sleep(3.0)  # an outage, not a blip
    services.redis_start()
    return "(3 s down)"


def faults_schedule(services: Services, plant: Plant, seconds: float) -> list[tuple]:
    return [
        (0.30 * seconds, "uvicorn worker SIGKILL", lambda: kill_server_worker(plant)),
        (0.45 * seconds, "PostgreSQL restart", lambda: services.pg("restart")),
        (0.60 * seconds, "Redis restart", lambda: restart_redis(services)),
        (0.75 * seconds, "task worker SIGKILL", lambda: kill_task_worker(plant)),
    ]


def run_faults(schedule: list[tuple], start: float) -> list[dict]:
    """Each fault at its time in a thread of its own (one that waits delays no other)."""
    done: list[dict] = []

    def run(at: float, name: str, action) -> None:
        time.sleep(max(0.0, start + at - time.time()))
        done.append(timed(name, action))

    threads = [threading.Thread(target=run, args=fault, daemon=True) for fault in schedule]
    for thread in threads:
        thread.start()
    return done


# --- figures ---------------------------------------------------------------------------------


def frame_figures(jobs: list[dict]) -> dict:
    accepted = [job for job in jobs if job.get("final") in (200, 201)]
    firsts = [job["first"] for job in jobs if "first" in job]
    return {
        "sent": len(jobs),
        "requests": sum(len(job["attempts"]) for job in jobs),
        "finals": Counter(str(job.get("final")) for job in jobs),
        "attempts": Counter(str(status) for job in jobs for status in job["attempts"]),
        "retried": sum(len(job["attempts"]) > 1 for job in jobs),
        "why": Counter(why for job in jobs for why in job.get("why", [])).most_common(4),
        "latencies": [job["latency_ms"] for job in accepted],
        "end_to_end": [(job["end"] - job["first"]) * 1000 for job in accepted],
        "lateness": [(job["first"] - job["due"]) * 1000 for job in jobs if "first" in job],
        "span": (max(firsts) - min(firsts)) if len(firsts) > 1 else 0.0,
        "accepted": len(accepted),
    }


def active_intervals(swaps: list[dict], initial: int = 1) -> dict[str, list[tuple]]:
    """Per station, (version, from, to): a swap's version may serve from the moment its
    request starts until the next swap's request has ended."""
    intervals: dict[str, list[tuple]] = {}
    by_station: dict[str, list[dict]] = {}
    for record in sorted(swaps, key=lambda r: r["start"]):
        by_station.setdefault(record["station"], []).append(record)
    for station, records in by_station.items():
        spans = [(initial, 0.0, records[0]["end"] if records else float("inf"))]
        for index, record in enumerate(records):
            until = records[index + 1]["end"] if index + 1 < len(records) else float("inf")
            spans.append((record["version"], record["start"], until))
        intervals[station] = spans
    return intervals


def wrong_versions(jobs: list[dict], swaps: list[dict], initial: int = 1) -> list[dict]:
    """Accepted frames whose response names a version not deployed while they were in flight."""
    intervals = active_intervals(swaps, initial)
    wrong = []
    for job in jobs:
        if job.get("final") not in (200, 201):
            continue
        spans = intervals.get(job["station"], [(initial, 0.0, float("inf"))])
        if not any(
            version == job["version"] and start <= job["end"] and job["first"] <= until
            for version, start, until in spans
        ):
            wrong.append(job)
    return wrong


def database_figures(line_pk: int, jobs: list[dict]) -> dict:
    from django.db import OperationalError, connections

    for _ in range(30):
        connections.close_all()  # the PostgreSQL restart broke this process's connection
        try:
            return _database_figures(line_pk, jobs)
        except OperationalError:
            time.sleep(1.0)
    return _database_figures(line_pk, jobs)


def _database_figures(line_pk: int, jobs: list[dict]) -> dict:
    from django.db.models import Count

    from inspection.models import Inspection

    rows = Inspection.objects.filter(station__line_id=line_pk)
    duplicates = (
        rows.values("station_id", "idempotency_key").annotate(n=Count("id")).filter(n__gt=1).count()
    )
    sent = {job["key"] for job in jobs}
    stored = {k: pk for k, pk in rows.values_list("idempotency_key", "id") if k in sent}
    acknowledged = {job["key"]: job["id"] for job in jobs if job.get("final") in (200, 201)}
    return {
        "rows": len(stored),
        "rows_before": rows.count() - len(stored),  # the saturation's frames
        "duplicates": duplicates,
        "without_key": rows.filter(idempotency_key="").count(),
        "acknowledged_not_stored": sum(key not in stored for key in acknowledged),
        "acknowledged_other_row": sum(
            key in stored and stored[key] != pk for key, pk in acknowledged.items()
        ),
        "stored_not_acknowledged": sum(key not in acknowledged for key in stored),
    }


def orphans_figures() -> tuple:
    from inspection.orphans import orphans_sweep

    before = orphans_sweep(dry_run=True, grace_seconds=0)
    cleaned = orphans_sweep(grace_seconds=0)
    after = orphans_sweep(dry_run=True, grace_seconds=0)
    return before, cleaned, after


def pct(values: list[float], q: float) -> float:
    return percentile(values, q) if values else float("nan")


def print_frames(title: str, figures: dict) -> None:
    lat, e2e = figures["latencies"], figures["end_to_end"]
    print(f"\n{title}")
    print(f"  frames sent                 {figures['sent']}  ({figures['requests']} requests)")
    print(f"  offered rate                {figures['sent'] / max(figures['span'], 1e-9):.1f}/s")
    finals = dict(sorted(figures["finals"].items()))
    print(f"  final answer per frame      {finals}")
    print(f"  every answer (attempts)     {dict(sorted(figures['attempts'].items()))}")
    print(f"  frames retried              {figures['retried']}")
    for why, count in figures["why"]:
        print(f"    {count:6d} x {why}")
    print(
        f"  accepted, one request       p50 {pct(lat, 50):.0f} ms  p99 {pct(lat, 99):.0f} ms  "
        f"max {max(lat, default=float('nan')):.0f} ms"
    )
    print(
        f"  accepted, with retries      p50 {pct(e2e, 50):.0f} ms  p99 {pct(e2e, 99):.0f} ms  "
        f"max {max(e2e, default=float('nan')):.0f} ms"
    )
    print(f"  client lag behind schedule  p99 {pct(figures['lateness'], 99):.0f} ms")


def print_swaps(swaps: list[dict]) -> None:
    took = [(r["end"] - r["start"]) * 1000 for r in swaps]
    failed = [r for r in swaps if r["status"] != 201]
    retried = Counter(str(a) for r in swaps for a in r["answers"][:-1])
    print(
        f"  deployment swaps            {len(swaps)}, failed {len(failed)}"
        + (f" e.g. {failed[0]['answers']}" if failed else "")
        + (f"; answers before a retry {dict(retried)}" if retried else "")
    )
    if took:
        print(
            f"  swap time                   p50 {pct(took, 50):.0f} ms  p99 {pct(took, 99):.0f} ms"
            f"  max {max(took):.0f} ms"
        )


def print_rss_timeline(samples: list[tuple[float, dict]], every: float = 60.0) -> None:
    """Server workers' RSS about once a minute: growth that levels off, or a leak."""
    start, shown, rows = samples[0][0], -every, []
    for at, sample in samples:
        if at - start - shown >= every or (at, sample) == samples[-1]:
            shown = at - start
            workers = {k.split()[-1]: v for k, v in sample.items() if k.startswith("uvicorn w")}
            rows.append(f"{shown:4.0f} s " + " ".join(f"{p}:{mb:.0f}" for p, mb in workers.items()))
    print("  uvicorn workers' RSS (pid:MB) over time")
    for row in rows:
        print(f"    {row}")


def print_rss(table: list[tuple]) -> None:
    print("\n  RSS per process             warm-up -> end (change), lived")
    for role, warm, end, lived in sorted(table):
        change = (
            f"{(end - warm) / warm * 100:+.1f} %"
            if warm
            else f"n/a (younger than {WARMUP_RSS_S:.0f} s)"
        )
        warm_text = f"{warm:.0f}" if warm else "-"
        print(f"    {role:<26}{warm_text:>6} -> {end:.0f} MB ({change}), {lived:.0f} s")


# --- modes ------------------------------------------------------------------------------------


def print_saturation(sat: dict) -> None:
    lat = sat["latencies"]
    print(
        f"\nsaturation (16 connections back to back): {sat['rate']:.1f} frames/s answered 201, "
        f"p50 {pct(lat, 50):.0f} ms p99 {pct(lat, 99):.0f} ms, answers {sat['statuses']}",
        flush=True,
    )


def mode_soak(args, ctx: dict) -> None:
    sat = saturation(ctx["line"], ctx["images"], ctx["work"], seconds=20)
    print_saturation(sat)
    rate, seconds = 0.8 * sat["rate"], args.minutes * 60
    start = time.time() + 2
    spec = client_spec(ctx["line"], ctx["images"], kind="open", rate=rate, seconds=seconds)
    client = run_client(spec | {"start": start, "connections": 64, "retry": True}, ctx["work"])
    swapper = Swapper(ctx["line"]["engineer"], list(ctx["line"]["tokens"]), 10.0, None)
    sampler = RssSampler(ctx["plant"])
    swapper.start()
    sampler.start()
    log(f"soak: {rate:.1f} frames/s for {args.minutes:g} min, swaps every 10 s")
    faults = run_faults(faults_schedule(ctx["services"], ctx["plant"], seconds), start)
    time.sleep(max(0.0, start + seconds - time.time()))
    swapper.stop.set()
    sampler.stop.set()
    jobs = client_result(client)["jobs"]
    swapper.join()
    sampler.join()
    log("load done; counting")
    figures = frame_figures(jobs)
    print_frames(f"soak: {args.minutes:g} min at 80 % of saturation ({rate:.1f}/s)", figures)
    print_swaps(swapper.records)
    for fault in faults:
        at = fault["start"] - start
        print(f"  fault at {at:5.0f} s              {fault['name']} {fault['detail']}")
    print_checks(ctx, jobs, swapper.records)
    print(f"  run_workers restarts        {ctx['plant'].task_restarts}")
    print_rss(sampler.table())
    print_rss_timeline(sampler.samples)


def print_checks(ctx: dict, jobs: list[dict], swaps: list[dict]) -> None:
    db = database_figures(ctx["line"]["line"], jobs)
    wrong = wrong_versions(jobs, swaps)
    accepted = sum(job.get("final") in (200, 201) for job in jobs)
    print(f"  rows stored                 {db['rows']} (+ {db['rows_before']} before: saturation)")
    print(f"  duplicates (rows per key>1) {db['duplicates']}")
    print(f"  rows without a key          {db['without_key']}")
    print(f"  stored, never acknowledged  {db['stored_not_acknowledged']}")
    print(
        f"  acknowledged, not stored    {db['acknowledged_not_stored']}"
        f"   acknowledged with another row's id {db['acknowledged_other_row']}"
    )
    print(
        f"  version deployed at that moment: {accepted - len(wrong)}/{accepted} responses"
        + (f"  WRONG e.g. {wrong[0]}" if wrong else "  (all)")
    )
    before, _cleaned, after = orphans_figures()
    print(f"  orphans before the sweep    {before.summary()}")
    print(f"  orphans after the sweep     {after.summary()}")
    print(f"  errors in logs (tracebacks, ERROR lines) {ctx['plant'].errors_logged()}")


def mode_swaps(args, ctx: dict) -> None:
    station = next(iter(ctx["line"]["tokens"]))
    seconds = args.swaps * args.swap_interval + 3
    start = time.time() + 2
    spec = client_spec(ctx["line"], ctx["images"], kind="open", rate=args.rate, seconds=seconds) | {
        "tokens": {station: ctx["line"]["tokens"][station]}
    }
    client = run_client(spec | {"start": start, "connections": 16, "retry": True}, ctx["work"])
    time.sleep(max(0.0, start + 1 - time.time()))
    swapper = Swapper(ctx["line"]["engineer"], [station], args.swap_interval, args.swaps)
    swapper.start()
    log(f"swaps: {args.swaps} swaps every {args.swap_interval} s under {args.rate:g} frames/s")
    jobs = client_result(client)["jobs"]
    swapper.join()
    figures = frame_figures(jobs)
    failed = sum(any(s not in (200, 201) for s in job["attempts"]) for job in jobs)
    print_frames(f"swaps: {args.swaps} under {args.rate:g} frames/s on one station", figures)
    print(f"  frames with any failed answer {failed}")
    print_swaps(swapper.records)
    print_checks(ctx, jobs, swapper.records)


def mode_overload(args, ctx: dict) -> None:
    sat = saturation(ctx["line"], ctx["images"], ctx["work"], seconds=20)
    print_saturation(sat)
    for share in (0.8, 2.0):
        rate = share * sat["rate"]
        spec = client_spec(ctx["line"], ctx["images"], kind="open", rate=rate)
        spec |= {"seconds": args.seconds, "start": time.time() + 1}
        client = run_client(spec | {"connections": 96, "retry": False}, ctx["work"])
        figures = frame_figures(client_result(client)["jobs"])
        print_frames(f"{share:.0%} of saturation ({rate:.1f}/s), no retries", figures)
        print(f"  accepted                    {figures['accepted'] / args.seconds:.1f} frames/s")
        other = {k: v for k, v in figures["attempts"].items() if k.startswith("5") and k != "503"}
        print(f"  5xx other than 503          {sum(other.values())} {other or ''}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=["soak", "swaps", "overload"], default="soak")
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length")
    parser.add_argument("--stations", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--swaps", type=int, default=100, help="swaps mode: how many")
    parser.add_argument("--swap-interval", type=float, default=0.5, help="swaps mode: seconds")
    parser.add_argument("--rate", type=float, default=20.0, help="swaps mode: frames/s")
    parser.add_argument("--seconds", type=float, default=30.0, help="overload mode: per phase")
    parser.add_argument(
        "--shared-services",
        action="store_true",
        help="use and RESTART the machine's PostgreSQL (5432) and Redis (6379)",
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args.client)
        return
    work = Path(tempfile.mkdtemp(prefix="linesight-soak-"))
    services = Services(args.shared_services, work)
    plant = None
    try:
        services.start()
        environment(services, work)
        log("building the line: stations, two validated versions of a tiny real model")
        line = build_line(1 if args.mode == "swaps" else args.stations, work)
        images = frame_images(work)
        plant = Plant(work, args.workers)
        plant.start()
        log(f"plant up: uvicorn {args.workers} workers, run_workers, PostgreSQL, Redis")
        ctx = {"line": line, "images": images, "work": work, "plant": plant}
        ctx["services"] = services
        {"soak": mode_soak, "swaps": mode_swaps, "overload": mode_overload}[args.mode](args, ctx)
    finally:
        if plant:
            plant.stop()
        services.stop()
        keep = Path(tempfile.gettempdir()) / "linesight-soak-last"
        shutil.rmtree(keep, ignore_errors=True)
        keep.mkdir()
        for log_file in work.glob("*.log"):
            shutil.copy(log_file, keep)
        print(f"logs of this run: {keep}")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
