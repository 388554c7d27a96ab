"""Settings for the test suite: the embedded shape unless DATABASE_URL / REDIS_URL say otherwise."""

import os
import tempfile

os.environ.setdefault("LINESIGHT_SECRET_KEY", "test-only-secret-key-" + "x" * 40)

from config.settings import *  # noqa: F403
from config.settings import DATA_DIR, DATABASES, LINESIGHT, STORAGES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Media of the test run goes to a throwaway folder, never to var/.
MEDIA_ROOT = tempfile.mkdtemp(prefix="linesight-test-media-")
if STORAGES["default"]["BACKEND"].endswith("FileSystemStorage"):
    STORAGES["default"] = {**STORAGES["default"], "OPTIONS": {"location": MEDIA_ROOT}}
LINESIGHT = {
    **LINESIGHT,
    "MODEL_CACHE_DIR": tempfile.mkdtemp(prefix="linesight-test-models-"),
    "DEMO_DIR": DATA_DIR / "demo",
    # Tests post frames as fast as they can; tests/inspection/test_overload.py sets a rate.
    "STATION_FRAME_RATE": 0,
}
STATIC_ROOT = tempfile.mkdtemp(prefix="linesight-test-static-")

# A file, not memory: tests that start real server processes share this database.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.mkdtemp(prefix="linesight-test-db-"), "test.sqlite3")
    }
