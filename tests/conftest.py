"""Fixtures shared by the whole suite.

Services the machine may lack (Redis, Chromium) are found here. On a
developer's laptop a missing one skips its tests with the reason; with
LINESIGHT_REQUIRE_SERVICES=1 (as in .ci/run) it fails them instead, so CI
never passes by skipping.
"""

import os
import shutil
import socket
from urllib.parse import urlparse

import pytest
from rest_framework.test import APIClient

# Tests whose rows must be committed (real server processes, the task worker,
# on_commit callbacks). Every such test restores the migrations' data (role
# groups, permissions) after the flush that ends it, so tests after it still
# find them; mixing with and without serialized rollback breaks that.
committed_db = pytest.mark.django_db(transaction=True, serialized_rollback=True)

REQUIRE_SERVICES = os.environ.get("LINESIGHT_REQUIRE_SERVICES", "") == "1"
TEST_REDIS_URL = os.environ.get("LINESIGHT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CHROMIUM = os.environ.get("LINESIGHT_CHROMIUM", "/usr/bin/chromium")


def missing_service(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (LINESIGHT_REQUIRE_SERVICES=1: CI must not skip)")
    pytest.skip(reason)


def _port_open(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis for tests that exercise channels-redis, whatever REDIS_URL says."""
    if not _port_open(TEST_REDIS_URL):
        missing_service(f"No Redis at {TEST_REDIS_URL}; start one or set LINESIGHT_TEST_REDIS_URL")
    return TEST_REDIS_URL


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        missing_service(
            f"No Chromium at {CHROMIUM}; apt-get install chromium or set LINESIGHT_CHROMIUM"
        )
    return CHROMIUM


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    """Each test writes its files to a folder of its own, so 'nothing stored' can be checked."""
    media = tmp_path / "media"
    media.mkdir()
    settings.MEDIA_ROOT = str(media)
    default = settings.STORAGES["default"]
    if default["BACKEND"].endswith("FileSystemStorage"):
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {**default, "OPTIONS": {"location": str(media)}},
        }
    return media


def stored_files(media) -> list[str]:
    """Every file under the test's media folder, relative, sorted."""
    return sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file())


@pytest.fixture(autouse=True)
def _fresh_line_facts():
    """Each worker keeps the line facts it built while their rows are unchanged; tests start
    afresh anyway."""
    from inspection.selectors import forget_line_facts

    forget_line_facts()
