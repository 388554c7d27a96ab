"""The README's client examples, run as they are against a live server and task worker.

docs/examples/setup_plant.py sets a plant up; docs/examples/upload_and_deploy.py
uploads a real (tiny) TensorFlow model with its preprocessing, waits while the
real validation worker validates it, maps its labels and deploys it; then the
station's device token, printed once by the first script, posts a frame and the
new version judges it.
"""

import os
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
import requests

from masterdata.models import DefectType, Line, Plant, Product, Shift, Station
from models_registry.models import ModelVersion
from tests import factories, servers
from tests.conftest import committed_db
from tests.images import GREEN, frame_bytes
from tests.registry import artifact_bytes

pytestmark = [committed_db, pytest.mark.slow]

EXAMPLES = servers.PROJECT_ROOT / "docs" / "examples"


def run_example(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@contextmanager
def validation_worker(data_dir):
    """The task worker of validations, as ``make worker`` runs it."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LINESIGHT_")},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LINESIGHT_SECRET_KEY": "worker-test-" + "k" * 50,
        "LINESIGHT_DATA_DIR": str(data_dir),
        "DATABASE_URL": servers.test_database_url(),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    log = (data_dir / "worker.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "db_worker",
            "--queue-name",
            "default,validation",  # validate_version is a task of the default queue
            "--no-reload",
            "--no-startup-delay",
        ],
        cwd=servers.PROJECT_ROOT,
        env=env,
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def device_tokens(output: str) -> dict[str, str]:
    """``device token <station> <token>`` lines, as setup_plant.py prints them."""
    rows = [line.split() for line in output.splitlines() if line.startswith("device token ")]
    return {row[2]: row[3] for row in rows}


def post_frame(url: str, token: str, station: str) -> requests.Response:
    """A green frame (the tiny model's 'missing_cap'), retried while the model loads (503)."""
    for _ in range(30):
        response = requests.post(
            f"{url}/api/v1/inspections/",
            headers={"Authorization": f"Token {token}"},
            data={"station": station},
            files={"image": ("frame.jpg", frame_bytes(GREEN), "image/jpeg")},
            timeout=60,
        )
        if response.status_code != 503:
            return response
        time.sleep(float(response.headers.get("Retry-After", "1")))
    return response


def counts() -> list[int]:
    return [m.objects.count() for m in (Plant, Shift, Line, Station, Product, DefectType)]


def test_a_pipeline_sets_up_a_plant_then_uploads_validates_maps_and_deploys(tmp_path, _media_root):
    token = factories.api_token(factories.engineer(username="pipeline"))
    viewer_token = factories.api_token(factories.viewer())
    artifact = tmp_path / "bottle.zip"
    artifact.write_bytes(artifact_bytes())

    with servers.asgi_servers(1, data_dir=tmp_path) as [server], validation_worker(tmp_path):
        refused = run_example("setup_plant.py", "--url", server.url, "--token", viewer_token)
        assert refused.returncode == 2  # the server's reason, printed as it is
        assert "403" in refused.stderr and "masterdata.add_plant" in refused.stderr
        assert not Plant.objects.exists()

        setup = run_example("setup_plant.py", "--url", server.url, "--token", token)
        assert setup.returncode == 0, setup.stderr
        tokens = device_tokens(setup.stdout)
        assert sorted(tokens) == ["L1-CAP", "L1-LABEL"]
        assert counts() == [1, 3, 1, 2, 1, 2]

        again = run_example("setup_plant.py", "--url", server.url, "--token", token)
        assert again.returncode == 0, again.stderr
        assert device_tokens(again.stdout) == {}  # existing stations keep their tokens
        assert counts() == [1, 3, 1, 2, 1, 2]

        deploy = run_example(
            "upload_and_deploy.py",
            *("--url", server.url, "--token", token, "--model", "bottle"),
            *("--artifact", str(artifact), "--labels", "ok,missing_cap,crack"),
            *("--resize-mode", "letterbox", "--value-scale", "0_1", "--color-mode", "rgb"),
            *("--map", "ok=", "--map", "missing_cap=missing_cap", "--map", "crack=crack"),
            *("--station", "L1-CAP", "--poll", "0.5", "--timeout", "180"),
        )
        assert deploy.returncode == 0, deploy.stderr + (tmp_path / "worker.log").read_text()
        assert "Deployed bottle v1 to L1-CAP" in deploy.stdout

        frame = post_frame(server.url, tokens["L1-CAP"], "L1-CAP")

    assert frame.status_code == 201, frame.text
    body = frame.json()
    assert (body["verdict"], body["label"], body["defect_type"]) == (
        "fail",
        "missing_cap",
        "missing_cap",
    )
    assert body["model_version"] == {"model": "bottle", "version": 1}
    version = ModelVersion.objects.get()
    assert (version.status, version.resize_mode) == ("ready", "letterbox")
