"""`make demo` runs `manage.py demo`: one command from an empty folder to a live line."""

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import PROJECT_ROOT, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_model_zip(tmp_path_factory):
    from demo.frames import CLASSES
    from tests import tf_models

    path = tmp_path_factory.mktemp("tiny") / "tiny-demo.zip"
    path.write_bytes(
        tf_models.savedmodel_zip(tf_models.colour_classifier(labels=CLASSES), labels=CLASSES)
    )
    return path


def demo_command(data_dir, model_zip, seconds: int) -> tuple[list[str], dict]:
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("LINESIGHT_", "DATABASE_URL", "REDIS_URL"))
        },
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LINESIGHT_SECRET_KEY": "demo-test-" + "d" * 50,
        "LINESIGHT_DATA_DIR": str(data_dir),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    args = [
        sys.executable,
        "manage.py",
        "demo",
        "--port",
        str(free_port()),
        "--rate",
        "5",
        "--model-zip",
        str(model_zip),
        "--duration",
        str(seconds),
    ]
    return args, env


def run_demo(data_dir, model_zip, seconds: int) -> subprocess.CompletedProcess:
    args, env = demo_command(data_dir, model_zip, seconds)
    return subprocess.run(
        args,
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_demo_starts_from_nothing_serves_and_the_stations_post_frames(tmp_path, tiny_model_zip):
    first = run_demo(tmp_path, tiny_model_zip, seconds=10)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "LineSight demo is running on http://127.0.0.1:" in first.stdout
    for login in ("engineer", "inspector", "viewer"):
        assert login in first.stdout
    assert "L1-S1:" in first.stdout and "L1-S2:" in first.stdout
    with sqlite3.connect(tmp_path / "linesight.sqlite3") as db:
        frames = db.execute(
            "SELECT count(*), count(DISTINCT station_id) FROM inspection_inspection"
        ).fetchone()
    assert frames[0] > 5 and frames[1] == 2

    # A second run reuses the database, the model and the frames: nothing is created again.
    second = run_demo(tmp_path, tiny_model_zip, seconds=2)
    assert second.returncode == 0, second.stdout + second.stderr
    with sqlite3.connect(tmp_path / "linesight.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM models_registry_modelversion").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM auth_user").fetchone() == (3,)


def processes_started_for(data_dir) -> list[int]:
    """Processes (the demo's server, worker, simulators) whose environment names data_dir."""
    marker = f"LINESIGHT_DATA_DIR={data_dir}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_stopping_the_demo_with_sigterm_stops_everything_it_started(tmp_path, tiny_model_zip):
    args, env = demo_command(tmp_path, tiny_model_zip, seconds=0)
    demo = subprocess.Popen(
        args, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        for line in demo.stdout:
            if "Press Ctrl-C to stop." in line:
                break
        assert len(processes_started_for(tmp_path)) >= 5  # demo, server, worker, 2 stations
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=60) == 0
    finally:
        demo.kill()
    assert processes_started_for(tmp_path) == []
