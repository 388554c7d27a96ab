"""Shared set-up of the dashboard benchmarks: a throwaway database, a plant, real servers.

A benchmark imports this first: it points Django at a fresh SQLite file in a
temporary folder (or at ``--database-url``, which must be a database you can
throw away), migrates it, and seeds one line with one station running the
tests' colour classifier (a real TFLite model). Servers are real uvicorn
processes (tests/servers.py), as ``make serve`` runs them.
"""

import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET_KEY = "benchmark-only-" + "s" * 50


def configure(database_url: str | None) -> Path:
    """Environment for this process and the servers it starts; returns the data folder."""
    data_dir = Path(tempfile.mkdtemp(prefix="linesight-bench-"))
    (data_dir / "media").mkdir()
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "LINESIGHT_SECRET_KEY": SECRET_KEY,
            "LINESIGHT_DATA_DIR": str(data_dir),
            "LINESIGHT_LOG_LEVEL": "WARNING",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
    )
    os.environ.pop("REDIS_URL", None)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)  # as make serve does
    return data_dir


def seed() -> dict:
    """Line L1, station ST1 serving the colour classifier; inspector 'bench', password 'bench'."""
    from masterdata.models import Station
    from tests import factories
    from tests.registry import ready_version

    if Station.objects.filter(code="ST1").exists():
        raise SystemExit("The database is not empty; give a throwaway --database-url.")
    plant = factories.plant(code="PL1")
    line = factories.line(code="L1", plant_obj=plant)
    station, token = factories.station_with_token(code="ST1", line_obj=line)
    version = ready_version(model_name="bottle")
    factories.deployment(station_obj=station, version=version, confidence_threshold=0.8)
    inspector = factories.inspector(username="bench", password="bench")  # noqa: S106
    return {"station": station, "token": token, "inspector": inspector}


def session_cookie(user) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def servers(count: int, data_dir: Path, redis_url: str | None, prefix: str, layer: str = "redis"):
    from tests.servers import asgi_servers

    return asgi_servers(
        count,
        data_dir=data_dir,
        redis_url=redis_url,
        extra_env={
            "LINESIGHT_SECRET_KEY": SECRET_KEY,
            "LINESIGHT_CHANNEL_PREFIX": prefix,
            "LINESIGHT_CHANNEL_LAYER": layer,
            # Without DATABASE_URL the servers use the embedded shape's SQLite
            # settings (WAL, IMMEDIATE transactions, busy timeout) on the same file.
            "DATABASE_URL": os.environ.get("DATABASE_URL", ""),
        },
    )


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[round(share * 1000) - 1]
