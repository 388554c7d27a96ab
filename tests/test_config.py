"""Settings come from the environment once; production passes Django's deploy checks."""

import json
import os
import subprocess
import sys

from tests.servers import PROJECT_ROOT

PRODUCTION_ENV = {
    "LINESIGHT_SECRET_KEY": "k9#Lq2v!Zr7@pW4x$Tn8&Yb3^Hd6*Jf1(Mc5)Gs0-Ue2+Ka9=Vo4",
    "LINESIGHT_HTTPS": "true",
    "LINESIGHT_ALLOWED_HOSTS": "linesight.plant.example",
}


def run_manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LINESIGHT_", "DATABASE_URL", "REDIS_URL"))
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def settings_under(env: dict) -> dict:
    code = (
        "import json; from django.conf import settings as s; print(json.dumps({"
        "'db': s.DATABASES['default']['ENGINE'], 'db_name': str(s.DATABASES['default']['NAME']),"
        "'layer': s.CHANNEL_LAYERS['default']['BACKEND'],"
        "'storage': s.STORAGES['default']['BACKEND'], 'debug': s.DEBUG,"
        "'journal': s.DATABASES['default'].get('OPTIONS', {}).get('init_command', ''),"
        "'transaction_mode': s.DATABASES['default'].get('OPTIONS', {}).get('transaction_mode')}))"
    )
    result = run_manage("shell", "-c", code, env={"LINESIGHT_SECRET_KEY": "x" * 60, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_settings_pass_the_deploy_checks_without_warnings():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_missing_secret_key_outside_debug_fails_loudly():
    result = run_manage("check", env={})
    assert result.returncode != 0
    assert "LINESIGHT_SECRET_KEY is not set" in result.stderr


def test_embedded_defaults_are_sqlite_in_wal_mode_and_in_memory_layer():
    values = settings_under({})
    assert values["db"] == "django.db.backends.sqlite3"
    assert "journal_mode=WAL" in values["journal"]
    assert values["layer"] == "channels.layers.InMemoryChannelLayer"
    assert values["storage"] == "django.core.files.storage.FileSystemStorage"
    assert values["debug"] is False


def test_a_sqlite_database_url_keeps_the_settings_for_concurrent_writers(tmp_path):
    values = settings_under({"DATABASE_URL": f"sqlite:///{tmp_path / 'other.sqlite3'}"})
    assert values["db_name"] == str(tmp_path / "other.sqlite3")
    assert "journal_mode=WAL" in values["journal"]
    assert values["transaction_mode"] == "IMMEDIATE"


def test_environment_switches_to_the_plant_shape():
    values = settings_under(
        {
            "DATABASE_URL": "postgres://linesight@db.plant:5432/linesight",
            "REDIS_URL": "redis://cache.plant:6379/0",
            "LINESIGHT_S3_BUCKET": "linesight-frames",
        }
    )
    assert values["db"] == "django.db.backends.postgresql"
    assert values["db_name"] == "linesight"
    assert values["layer"] == "channels_redis.core.RedisChannelLayer"
    assert values["storage"] == "storages.backends.s3.S3Storage"


def test_a_malformed_setting_names_the_variable():
    result = run_manage(
        "check", env={"LINESIGHT_SECRET_KEY": "x" * 60, "LINESIGHT_MAX_FRAME_BYTES": "ten"}
    )
    assert result.returncode != 0
    assert "LINESIGHT_MAX_FRAME_BYTES must be a whole number" in result.stderr
