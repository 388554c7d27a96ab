# ruff: noqa: F811 - pytest fixtures imported from test_webhooks are requested by name
"""End to end: a frame posted to the API reaches a webhook receiver through ``run_workers``.

``run_workers`` starts the fan-out (``webhooks_dispatch``) and the "webhooks"
task worker as separate processes on the test database, as in a plant.
"""

import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import pytest

from integrations.models import WebhookDelivery
from tests import factories, servers
from tests.conftest import committed_db
from tests.images import GREEN, RED, frame_bytes
from tests.inspection.test_api_frames import post_frame
from tests.integrations.receiver import verify_signature
from tests.integrations.test_webhooks import receiver, subscribe  # noqa: F401 - fixture
from tests.registry import ready_version


def _start_workers(tmp_path):
    env = servers.worker_env(
        tmp_path,
        LINESIGHT_WEBHOOKS_ALLOW_PRIVATE="true",
        LINESIGHT_WEBHOOKS_POLL_SECONDS="0.2",
    )
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_workers", "--verbosity", "0"],
        cwd=servers.PROJECT_ROOT,
        env=env,
        start_new_session=True,
    )


def _stop(process) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def _wait_for(receiver, count: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.accepted()) < count and time.monotonic() < deadline:
        time.sleep(0.02)


def _post(api_client, token, colour, serial) -> None:
    posted = post_frame(
        api_client, token=token, station="ST1", image=frame_bytes(colour), serial=serial
    )
    assert posted.status_code == 201, posted.json()


@committed_db
@pytest.mark.slow
def test_a_failed_frame_reaches_the_receiver_through_the_workers(
    tmp_path, _media_root, settings, receiver, api_client
):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    workers = _start_workers(tmp_path)  # starting up while the model is built
    try:
        line = factories.line(code="L1", plant_obj=factories.plant(code="PL1"))
        station, token = factories.station_with_token(code="ST1", line_obj=line)
        factories.deployment(station_obj=station, version=ready_version(model_name="bottle"))
        hook = subscribe(receiver.url, events=["inspection.failed"])
        _post(api_client, token, RED, "SN-OK")
        _post(api_client, token, GREEN, "SN-BAD")
        _wait_for(receiver, 1)
        _post(api_client, token, GREEN, "SN-BAD-2")  # the workers are warm now
        _wait_for(receiver, 2)
    finally:
        _stop(workers)

    assert [r.envelope["data"]["serial"] for r in receiver.requests] == ["SN-BAD", "SN-BAD-2"]
    got = receiver.requests[0]
    data = got.envelope["data"]
    assert (data["verdict"], data["defect_type"]) == ("fail", "missing_cap")
    assert (got.envelope["plant"], got.envelope["line"], got.envelope["station"]) == (
        "PL1",
        "L1",
        "ST1",
    )
    assert verify_signature(hook.secret, got.body, got.headers["X-LineSight-Signature"])
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"delivered"}
    warm = receiver.requests[1]
    lag = warm.at - datetime.fromisoformat(warm.envelope["occurred_at"]).timestamp()
    print(f"frame's outbox row to the receiver: {lag * 1000:.0f} ms")
