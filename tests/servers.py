"""Real ASGI server processes for tests, sharing the test database and media.

Each server is ``uvicorn config.asgi:application`` with the production
settings module, pointed by environment variables at the test database (a
SQLite file or the PostgreSQL test database), the test's media folder and,
when given, a Redis channel layer. Tests using it need ``transactional_db``
so their rows are committed where the servers can see them.
"""

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from django.conf import settings
from django.db import connection

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        name = str(db["NAME"])
        if "memory" in name:
            raise RuntimeError("Server tests need a file-based SQLite test database.")
        return f"sqlite:///{name}"
    user = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{user}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


# Housekeeping run_workers would enqueue on its own while a test runs (rollups every
# 30 s): off in tests' workers, so none leaves rows behind for the tests after it.
PERIODIC_JOBS_OFF = {
    "LINESIGHT_ORPHAN_SWEEP_INTERVAL_SECONDS": "0",
    "LINESIGHT_RETENTION_INTERVAL_SECONDS": "0",
    "LINESIGHT_ROLLUP_INTERVAL_SECONDS": "0",
}


def worker_env(data_dir: Path, **settings_env: str) -> dict[str, str]:
    """The environment of a ``run_workers`` a test starts on the test database.

    Only what the test says: the shell's LINESIGHT_* variables are left out, the
    periodic jobs are off unless ``settings_env`` turns one on.
    """
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("LINESIGHT_")}
    return {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LINESIGHT_SECRET_KEY": "worker-test-" + "k" * 50,
        "LINESIGHT_DATA_DIR": str(data_dir),
        "DATABASE_URL": test_database_url(),
        **PERIODIC_JOBS_OFF,
        **settings_env,
    }


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _wait_ready(server: Server, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"Server exited early:\n{server.log()}")
        try:
            if requests.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"Server not ready after {timeout} s:\n{server.log()}")


@contextmanager
def asgi_servers(
    count: int, *, data_dir: Path, redis_url: str | None = None, workers: int = 1, extra_env=None
):
    """Start ``count`` server processes (each with ``workers`` workers); yield them; stop them."""
    media_root = Path(settings.STORAGES["default"]["OPTIONS"]["location"])
    if media_root != data_dir / "media":
        raise RuntimeError("data_dir must be the parent of the test's media folder")
    # The servers' configuration is what the test says, not what the shell
    # running the tests happens to export.
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("LINESIGHT_") and key not in {"DATABASE_URL", "REDIS_URL"}
    }
    env = {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LINESIGHT_SECRET_KEY": "server-test-" + "k" * 50,
        "LINESIGHT_DEBUG": "false",
        "LINESIGHT_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LINESIGHT_DATA_DIR": str(data_dir),
        "LINESIGHT_LOG_LEVEL": "INFO",
        "DATABASE_URL": test_database_url(),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **(extra_env or {}),
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    servers = []
    try:
        for index in range(count):
            port = free_port()
            log_path = data_dir / f"server-{index}.log"
            log = log_path.open("wb")
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
                    "--workers",
                    str(workers),
                    "--no-access-log",
                ],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            servers.append(
                Server(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
            )
        for server in servers:
            _wait_ready(server)
        yield servers
    finally:
        for server in servers:
            server.process.terminate()
        for server in servers:
            try:
                server.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.process.kill()
