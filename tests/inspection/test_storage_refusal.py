"""A storage that refuses a frame's bytes: the camera is answered 503 with Retry-After and
a clear message, and nothing is half-written (no row without its bytes, no cut file).

Real faults where the machine allows: a full tmpfs volume (ENOSPC), a read-only folder
(EACCES as a normal user, EPERM via chattr +i as root) and an S3 bucket that is gone.
Where a tmpfs cannot be mounted, a storage whose save raises ENOSPC stands in.
"""

import errno
import os
import subprocess

import pytest
from django.core.files.storage import FileSystemStorage

from inspection.models import Inspection
from inspection.runtime import model_cache
from tests.images import RED, frame_bytes
from tests.inspection.test_api_frames import post_frame
from tests.inspection.test_scale_out import BUCKET, moto_s3  # noqa: F401 - the fixture


class FullStorage(FileSystemStorage):
    """Stands in for a full volume where no tmpfs can be mounted."""

    def _save(self, name, content):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _use_folder(settings, folder, backend="django.core.files.storage.FileSystemStorage"):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": backend, "OPTIONS": {"location": str(folder)}},
    }


def _fill(folder) -> None:
    """Write until the volume says ENOSPC."""
    descriptor = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(descriptor, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(descriptor)


@pytest.fixture
def api_client(frame_client):
    """Every test here runs twice: through Django's view and through the lean ASGI route."""
    return frame_client


@pytest.fixture
def warm(line_setup):
    """The station's model loaded (from the storage) before the storage fails: a running line."""
    model_cache().get(line_setup["version"])
    return line_setup


@pytest.fixture
def full_volume(warm, settings, tmp_path):
    folder = tmp_path / "full"
    folder.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
            capture_output=True,
        ).returncode
        == 0
    )
    try:
        if mounted:
            _fill(folder)
            _use_folder(settings, folder)
        else:
            _use_folder(settings, folder, backend=f"{__name__}.FullStorage")
        yield folder
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture
def read_only_folder(warm, settings, tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o500)
        restore = ["chmod", "0700", str(folder)]
    elif subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
        restore = ["chattr", "-i", str(folder)]
    else:
        pytest.skip("root without chattr: no way to make a folder read-only here")
    _use_folder(settings, folder)
    yield folder
    subprocess.run(restore, check=True)


def _files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _assert_refused(response) -> None:
    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) > 0
    assert response.json()["detail"].startswith("Storage full / unavailable: ")
    assert not Inspection.objects.exists()


def test_a_full_volume_answers_503_and_keeps_nothing(line_setup, full_volume, api_client):
    response = post_frame(api_client, token=line_setup["token"], image=frame_bytes(RED))

    _assert_refused(response)
    assert "No space left on device" in response.json()["detail"]
    assert _files(full_volume) in ([], ["filler"]), "no cut frame file left behind"


def test_the_retry_with_the_same_key_is_stored_once_space_is_back(
    line_setup, full_volume, api_client, settings, tmp_path
):
    first = post_frame(
        api_client, token=line_setup["token"], image=frame_bytes(RED), frame_id="k-1"
    )
    _use_folder(settings, tmp_path / "media")

    retry = post_frame(
        api_client, token=line_setup["token"], image=frame_bytes(RED), frame_id="k-1"
    )

    assert first.status_code == 503
    assert retry.status_code == 201, retry.content
    assert Inspection.objects.count() == 1


def test_a_read_only_folder_answers_503_and_keeps_nothing(line_setup, read_only_folder, api_client):
    response = post_frame(api_client, token=line_setup["token"], image=frame_bytes(RED))

    _assert_refused(response)
    assert _files(read_only_folder) == []


def test_a_missing_s3_bucket_answers_503_and_keeps_nothing(
    moto_s3,  # noqa: F811 - pytest passes the imported fixture
    line_setup,
    api_client,
):
    first = post_frame(api_client, token=line_setup["token"], image=frame_bytes(RED))
    assert first.status_code == 201, "the line ran on S3 until its bucket went"
    client = moto_s3["client"]
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)

    response = post_frame(api_client, token=line_setup["token"], image=frame_bytes(RED))

    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) > 0
    assert response.json()["detail"].startswith("Storage full / unavailable: ")
    assert "NoSuchBucket" in response.json()["detail"]
    assert Inspection.objects.count() == 1, "only the frame stored before"
