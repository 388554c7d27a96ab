"""The README's client examples (docs/examples/), run as a user runs them against a live server.

A real ASGI server process with a real deployed model judges the frames;
a real task worker process builds the exports.
"""

import csv
import io
import os
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openpyxl
import pytest

from inspection.models import Inspection
from tests import factories, servers
from tests.conftest import committed_db
from tests.images import GREEN, RED, frame_bytes
from tests.registry import ready_version
from tests.servers import PROJECT_ROOT, asgi_servers

pytestmark = [committed_db, pytest.mark.slow]

EXAMPLES = PROJECT_ROOT / "docs" / "examples"
MANAGE_WORKER = [sys.executable, "manage.py", "worker", "--no-startup-delay", "--no-reload"]


def run_example(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@contextmanager
def export_worker(data_dir: Path):
    """``manage.py worker`` on the exports queue, on the test's database and media."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LINESIGHT_")},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LINESIGHT_SECRET_KEY": "worker-test-" + "k" * 50,
        "LINESIGHT_DATA_DIR": str(data_dir),
        "DATABASE_URL": servers.test_database_url(),
    }
    log = data_dir / "worker.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [*MANAGE_WORKER, "--queue-name", "exports", "--interval", "0.2"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def station_token():
    line = factories.line(code="L1", plant_obj=factories.plant(code="P1"))
    station, token = factories.station_with_token(code="ST1", line_obj=line)
    factories.deployment(station_obj=station, version=ready_version(model_name="bottle"))
    return token


@pytest.fixture
def frames_dir(tmp_path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for number in range(4):
        colour = RED if number % 2 else GREEN
        (folder / f"cap-{number}.jpg").write_bytes(frame_bytes(colour, size=(320, 240)))
    return folder


def test_frames_example_stores_each_frame_once_through_rate_limits_and_reruns(
    tmp_path, station_token, frames_dir
):
    # One frame a second, no burst: the camera outpaces it and hears 429 + Retry-After.
    limits = {"LINESIGHT_STATION_FRAME_RATE": "1", "LINESIGHT_STATION_FRAME_BURST": "1"}
    with asgi_servers(1, data_dir=tmp_path, extra_env=limits) as (server,):
        common = ["--url", server.url, "--token", station_token, "--station", "ST1"]
        first = run_example(
            "post_frames.py", *common, "--lot", "LOT-7", str(frames_dir), cwd=tmp_path
        )
        assert first.returncode == 0, first.stderr + server.log()
        assert "HTTP 429, sending it again in 1 s" in first.stderr
        assert first.stdout.splitlines()[-1] == "4 stored, 0 already stored, 0 refused"
        assert "cap-1.jpg: stored" in first.stdout and " fail missing_cap " in first.stdout

        again = run_example("post_frames.py", *common, str(frames_dir), cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert again.stdout.splitlines()[-1] == "0 stored, 4 already stored, 0 refused"

        stub = run_example("post_frames.py", *common, "--stub", "2", cwd=tmp_path)
        assert stub.returncode == 0, stub.stderr
        assert stub.stdout.splitlines()[-1] == "2 stored, 0 already stored, 0 refused"

        wrong = run_example("post_frames.py", *common[:-1], "NOPE", "--stub", "1", cwd=tmp_path)
        assert wrong.returncode == 1
        assert "refused, HTTP 400: station: Unknown station 'NOPE'." in wrong.stdout

    serials = sorted(Inspection.objects.filter(lot="LOT-7").values_list("serial", flat=True))
    assert serials == ["cap-0", "cap-1", "cap-2", "cap-3"]  # once each, whatever was resent
    assert Inspection.objects.count() == 6


class Busy(BaseHTTPRequestHandler):
    """A server that answers each frame's first delivery 503 and its second 201."""

    seen: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        key = self.headers["Idempotency-Key"]
        first = key not in self.seen
        self.seen.append(key)
        body = (
            b'{"detail": "busy"}'
            if first
            else b'{"id": 1, "verdict": "pass", "defect_type": null, "label": "ok", '
            b'"confidence": "0.99", "model_version": {"model": "m", "version": 1}}'
        )
        self.send_response(503 if first else 201)
        if first:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_frames_example_resends_a_frame_answered_503_with_the_same_key(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        done = run_example(
            "post_frames.py",
            "--url",
            url,
            "--token",
            "t",
            "--station",
            "S",
            "--stub",
            "2",
            cwd=tmp_path,
        )
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("HTTP 503, sending it again in 1 s") == 2
    first, second = Busy.seen[0:2], Busy.seen[2:4]
    assert first[0] == first[1] and second[0] == second[1] and first[0] != second[0]


def test_export_example_starts_polls_and_downloads_and_streams_a_small_csv(
    tmp_path, station_token, frames_dir
):
    viewer_token = factories.api_token(factories.viewer(username="bi"))
    with asgi_servers(1, data_dir=tmp_path) as (server,), export_worker(tmp_path):
        device = ["--url", server.url, "--token", station_token, "--station", "ST1"]
        posted = run_example("post_frames.py", *device, str(frames_dir), cwd=tmp_path)
        assert posted.returncode == 0, posted.stderr
        user = ["--url", server.url, "--token", viewer_token, "--plant", "P1"]

        workbook = run_example("export.py", *user, "--format", "xlsx", cwd=tmp_path)
        assert workbook.returncode == 0, workbook.stderr
        path = tmp_path / workbook.stdout.strip()
        assert path.name.startswith("linesight-report-") and path.suffix == ".xlsx"
        inspections = openpyxl.load_workbook(path)["Inspections"]
        serials = sorted(row[-2] for row in inspections.iter_rows(min_row=2, values_only=True))
        assert serials == ["cap-0", "cap-1", "cap-2", "cap-3"]

        direct = run_example(
            "export.py", *user, "--direct", "--station", "ST1", "-o", "st1.csv", cwd=tmp_path
        )
        assert direct.returncode == 0, direct.stderr
        rows = list(csv.DictReader(io.StringIO((tmp_path / "st1.csv").read_text())))
        assert sorted(row["serial"] for row in rows) == ["cap-0", "cap-1", "cap-2", "cap-3"]

        refused = run_example("export.py", *user, "--line", "NOPE", cwd=tmp_path)
        assert refused.returncode == 2
        assert "HTTP 400: Unknown line 'NOPE'." in refused.stderr
