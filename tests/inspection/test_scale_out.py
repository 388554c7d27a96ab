"""Scale-out that is real: two hosts sharing PostgreSQL, Redis and an S3-compatible store.

Each "host" is a uvicorn server process on a port of its own with its own
data folder (model cache, local files), both pointed at the test's
PostgreSQL database, a Redis, and ``moto_server`` on loopback as S3
(django-storages' S3 backend talks to it unmodified). A frame posted to
one host is served by the other; a deployment activated on one judges the
other's next frame. CI runs it in its PostgreSQL shape; on SQLite it is
skipped (two hosts never share a SQLite file).
"""

import os
import shutil
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager

import pytest
import requests
from django.db import connection

from tests import factories
from tests import servers as test_servers
from tests.conftest import committed_db, missing_service
from tests.images import GREEN, RED, frame_bytes
from tests.registry import ready_version
from tests.servers import PROJECT_ROOT, Server, free_port

pytestmark = [committed_db, pytest.mark.slow]

BUCKET = "linesight-scale-out"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def s3(moto_s3):
    if connection.vendor != "postgresql":
        pytest.skip("Two hosts share PostgreSQL, not a SQLite file: run with DATABASE_URL.")
    return moto_s3


@pytest.fixture
def moto_s3(settings, tmp_path, monkeypatch):
    """A moto S3 server on loopback with one bucket; this process's storage points at it."""
    server = shutil.which("moto_server") or os.path.join(
        os.path.dirname(sys.executable), "moto_server"
    )
    if not os.path.exists(server):
        missing_service("moto_server not installed (pip install -e '.[dev]')")
    import boto3

    port = free_port()
    log = (tmp_path / "moto.log").open("wb")
    process = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(endpoint, timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.2)
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {
                    "bucket_name": BUCKET,
                    "endpoint_url": endpoint,
                    "region_name": "us-east-1",
                    "default_acl": None,
                    "querystring_auth": True,
                    "file_overwrite": False,
                },
            },
        }
        yield {"endpoint": endpoint, "client": client}
    finally:
        process.terminate()
        process.wait(timeout=20)


@contextmanager
def hosts(count: int, *, tmp_path, s3: dict, redis_url: str):
    """``count`` server processes, each with its own data folder, sharing DB, Redis and S3."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LINESIGHT_", "AWS_")) and key not in {"DATABASE_URL", "REDIS_URL"}
    }
    prefix = uuid.uuid4().hex[:8]
    servers: list[Server] = []
    try:
        for index in range(count):
            data_dir = tmp_path / f"host-{index}"
            data_dir.mkdir()
            env = {
                **inherited,
                **S3_ENV,
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "LINESIGHT_SECRET_KEY": "scale-out-test-" + "k" * 50,
                "LINESIGHT_ALLOWED_HOSTS": "127.0.0.1,localhost",
                "LINESIGHT_DATA_DIR": str(data_dir),
                "DATABASE_URL": test_servers.test_database_url(),
                "REDIS_URL": redis_url,
                "LINESIGHT_CHANNEL_PREFIX": prefix,
                "LINESIGHT_S3_BUCKET": BUCKET,
                "LINESIGHT_S3_ENDPOINT_URL": s3["endpoint"],
                "LINESIGHT_S3_REGION": "us-east-1",
                "TF_CPP_MIN_LOG_LEVEL": "2",
            }
            port = free_port()
            log_path = data_dir / "server.log"
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "config.asgi:application",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-access-log",
                ],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=log_path.open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            servers.append(
                Server(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
            )
        for server in servers:
            test_servers._wait_ready(server)
        yield servers
    finally:
        for server in servers:
            server.process.terminate()
        for server in servers:
            try:
                server.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.process.kill()


def _post_frame(server: Server, token: str, image: bytes) -> requests.Response:
    return requests.post(
        f"{server.url}/api/v1/inspections/",
        headers={"Authorization": f"Token {token}", "Idempotency-Key": uuid.uuid4().hex},
        data={"station": "ST1"},
        files={"image": ("frame.jpg", image, "image/jpeg")},
        timeout=60,
    )


def test_two_hosts_share_frames_and_deployments_through_postgres_redis_and_s3(
    s3, line_setup, redis_url, tmp_path
):
    second = ready_version(model_name="bottle")  # v2, stored in S3 like v1
    engineer_token = factories.api_token(factories.engineer())
    device = line_setup["token"]
    image = frame_bytes(RED)

    with hosts(2, tmp_path=tmp_path, s3=s3, redis_url=redis_url) as (host_a, host_b):
        posted = _post_frame(host_a, device, image)
        assert posted.status_code == 201, (posted.content[:300], host_a.log()[-3000:])
        frame_id = posted.json()["id"]
        assert posted.json()["model_version"]["version"] == 1

        served = requests.get(
            f"{host_b.url}/api/v1/inspections/{frame_id}/image/",
            headers={"Authorization": f"Token {engineer_token}"},
            timeout=30,
        )
        assert served.status_code == 200, (served.content[:300], host_b.log()[-3000:])
        assert served.content == image
        keys = [o["Key"] for o in s3["client"].list_objects_v2(Bucket=BUCKET)["Contents"]]
        assert any(key.startswith("frames/") for key in keys)
        assert not (tmp_path / "host-0" / "media" / "frames").exists(), "frames go to S3 only"

        swap = requests.post(
            f"{host_a.url}/api/v1/deployments/",
            headers={"Authorization": f"Token {engineer_token}"},
            json={
                "station": "ST1",
                "model": "bottle",
                "version": second.number,
                "confidence_threshold": 0.8,
            },
            timeout=60,
        )
        assert swap.status_code == 201, swap.content[:500]

        after = _post_frame(host_b, device, frame_bytes(GREEN))
        assert after.status_code == 201, (after.content[:300], host_b.log()[-3000:])
        assert after.json()["model_version"]["version"] == second.number
        assert after.json()["verdict"] == "fail"
