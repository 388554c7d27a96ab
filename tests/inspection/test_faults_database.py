"""The database away: the API answers 503 with Retry-After, the task worker waits and resumes.

The outage is real: the connection is pointed at a port where nothing listens
(PostgreSQL) or at a file in a folder that does not exist (SQLite), so the
driver itself raises. For the worker, a TCP relay of the test's own stands
between it and PostgreSQL and is stopped and started again, which is what a
database restart looks like from the worker's side (the shared server is
never restarted).
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager, suppress

import pytest
from django.db import connection, connections

from common.jobs import run_job
from inspection.models import Inspection
from tests import factories, servers
from tests.conftest import committed_db, stored_files
from tests.images import GREEN, frame_bytes
from tests.inspection.test_api_frames import post_frame

pytestmark = [committed_db]


@pytest.fixture
def api_client(frame_client):
    """The frame tests here run twice: through Django's view and through the lean ASGI route."""
    return frame_client


@contextmanager
def database_away(tmp_path):
    """Point the default connection at a database that cannot be reached, then restore it."""
    conn = connections["default"]
    saved = dict(conn.settings_dict)
    _disconnect(conn)
    if conn.vendor == "sqlite":
        conn.settings_dict["NAME"] = str(tmp_path / "no-such-folder" / "db.sqlite3")
    else:
        conn.settings_dict.update(HOST="127.0.0.1", PORT=str(servers.free_port()))
    try:
        yield
    finally:
        _disconnect(conn)
        conn.settings_dict.clear()
        conn.settings_dict.update(saved)


def _disconnect(conn) -> None:
    """Close the connection and, on PostgreSQL, its pool, so the next query connects anew."""
    conn.close()
    if hasattr(conn, "close_pool"):
        conn.close_pool()


def test_a_frame_sent_while_the_database_is_away_gets_503_with_retry_after(
    line_setup, api_client, tmp_path, _media_root
):
    image = frame_bytes(GREEN)
    before = stored_files(_media_root)
    with database_away(tmp_path):
        response = post_frame(api_client, token=line_setup["token"], image=image)

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "database is unavailable" in response.json()["detail"]
    assert Inspection.objects.count() == 0
    assert stored_files(_media_root) == before
    # Once it is back, the same frame goes through.
    assert post_frame(api_client, image=image).status_code == 201


def test_reading_the_api_and_pages_while_the_database_is_away_gets_503(client, tmp_path):
    engineer = factories.engineer()
    token = factories.api_token(engineer)
    client.force_login(engineer)
    with database_away(tmp_path):
        api = client.get("/api/v1/inspections/", HTTP_AUTHORIZATION=f"Token {token}")
        page = client.get("/reports/")
    assert (api.status_code, api["Retry-After"]) == (503, "5")
    assert "database is unavailable" in api.json()["detail"]
    assert (page.status_code, page["Retry-After"]) == (503, "5")
    assert "database is unavailable" in page.content.decode()


# --- The task worker ---------------------------------------------------------


class Relay:
    """A TCP relay to PostgreSQL on a port of its own: stopping it drops every connection."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.port = servers.free_port()
        self.listener: socket.socket | None = None
        self.sockets: list[socket.socket] = []

    def start(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def stop(self) -> None:
        for sock in [s for s in (self.listener, *self.sockets) if s is not None]:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.sockets = []

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _task_ran(result_id: str, timeout: float = 60) -> bool:
    """Whether a worker picked up the task (it ends failed: it names no job)."""
    from django_tasks_db.models import DBTaskResult

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if DBTaskResult.objects.get(pk=result_id).status != "READY":
            return True
        time.sleep(0.2)
    return False


def _enqueue() -> str:
    """A task for the worker's queue; it names no job, so running it is all there is to see."""
    return str(run_job.using(queue_name="default").enqueue(str(uuid.uuid4())).id)


MANAGE = [sys.executable, "manage.py"]
WORKER_FLAGS = ["--no-startup-delay", "--no-reload"]


@contextmanager
def worker_process(database_url: str, tmp_path, command: str = "worker"):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LINESIGHT_")},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LINESIGHT_SECRET_KEY": "worker-test-" + "k" * 50,
        "LINESIGHT_DATA_DIR": str(tmp_path),
        "DATABASE_URL": database_url,
    }
    log = tmp_path / f"{command}.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [*MANAGE, command, "--queue-name", "default", "--interval", "0.2", *WORKER_FLAGS],
            cwd=servers.PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process, log
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def unreachable_database(tmp_path):
    """A database URL that fails now, and a function that makes it reach the test database."""
    if connection.vendor == "sqlite":
        folder = tmp_path / "later"
        url = f"sqlite:///{folder / 'db.sqlite3'}"

        def come_back() -> None:
            folder.mkdir()
            (folder / "db.sqlite3").symlink_to(connection.settings_dict["NAME"])

        yield url, come_back, None
        return
    db = connection.settings_dict
    relay = Relay((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
    url = f"postgres://{db['USER']}@127.0.0.1:{relay.port}/{db['NAME']}"
    try:
        yield url, relay.start, relay
    finally:
        relay.stop()


@pytest.mark.slow
def test_the_worker_waits_for_the_database_and_survives_its_restart(unreachable_database, tmp_path):
    url, come_back, relay = unreachable_database
    first = _enqueue()
    with worker_process(url, tmp_path) as (worker, log):
        time.sleep(3)  # the database is away: db_worker would have exited by now
        assert worker.poll() is None, log.read_text()
        come_back()
        assert _task_ran(first), log.read_text()
        if relay is not None:  # PostgreSQL: a restart drops every connection
            relay.stop()
            time.sleep(2)
            relay.start()
        second = _enqueue()
        assert _task_ran(second), log.read_text()
        assert worker.poll() is None
    assert "Database unavailable" in log.read_text()


@pytest.mark.slow
def test_the_stock_db_worker_exits_on_the_same_outage(unreachable_database, tmp_path):
    """Why ``manage.py worker`` exists: django-tasks-db's own loop gives up."""
    url, _, _ = unreachable_database
    with worker_process(url, tmp_path, command="db_worker") as (worker, log):
        assert worker.wait(timeout=30) != 0, log.read_text()
    assert "OperationalError" in log.read_text()
