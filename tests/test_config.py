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


def test_missing_secret_key_outside_debug_fails_loudly(tmp_path):
    # An empty data dir: no secret_key file a demo run may have left in var/.
    result = run_manage("check", env={"LINESIGHT_DATA_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "LINESIGHT_SECRET_KEY is not set" in result.stderr
    assert "LINESIGHT_SECRET_KEY_FILE" in result.stderr


def test_manage_py_reads_the_key_make_demo_wrote_to_the_data_dir(tmp_path):
    # `make demo` writes <data dir>/secret_key; the README's manage.py commands
    # run in that checkout with no LINESIGHT_SECRET_KEY in the environment.
    (tmp_path / "secret_key").write_text("k" * 50 + "\n")
    result = run_manage("check", env={"LINESIGHT_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    result = run_manage("shell", "-c", code, env={"LINESIGHT_DATA_DIR": str(tmp_path)})
    assert result.stdout.strip().splitlines()[-1] == "k" * 50


def test_a_named_secret_key_file_is_read_and_a_missing_one_is_an_error(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("s" * 50)
    named = {
        "LINESIGHT_DATA_DIR": str(tmp_path / "data"),
        "LINESIGHT_SECRET_KEY_FILE": str(key_file),
    }
    assert run_manage("check", env=named).returncode == 0

    missing = {**named, "LINESIGHT_SECRET_KEY_FILE": str(tmp_path / "absent")}
    result = run_manage("check", env=missing)
    assert result.returncode != 0
    assert f"The secret key file {tmp_path / 'absent'} is not readable" in result.stderr


def test_tensorflow_keeps_its_info_lines_out_of_the_console(tmp_path):
    # What the server and the task worker do: settings first, then an app
    # imports TensorFlow and loads a model. Nobody set TF_CPP_MIN_LOG_LEVEL.
    code = (
        "import tensorflow as tf, tempfile\n"
        "m = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)])\n"
        "d = tempfile.mkdtemp()\n"
        "m.export(d, verbose=False)\n"
        "tf.saved_model.load(d)\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=PROJECT_ROOT,
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "LINESIGHT_DEBUG": "true",
            "LINESIGHT_DATA_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    console = result.stdout + result.stderr
    assert " INFO tensorflow " not in console  # Python side: "Assets written to ..."
    assert "loader.cc" not in console  # C++ side: "Reading SavedModel from ..."


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
