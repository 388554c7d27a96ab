"""Archives of tiny labelled images for the dataset tests, made here (never real photographs)."""

import io
import tarfile
import zipfile

from common.jobs import job_run
from tests.hostile_models import tar_add_file, targz_bytes, zip_bytes
from tests.images import frame_bytes


def picture(index: int, *, size=(24, 16), fmt: str = "PNG") -> bytes:
    """A distinct small image per index (distinct pixels, so distinct sha256)."""
    from PIL import Image

    colour = ((index * 37) % 256, (index * 91) % 256, (index * 53 + 7) % 256)
    image = Image.new("RGB", size, colour)
    image.putpixel((0, 0), (index % 256, (index // 256) % 256, (index // 65536) % 256))
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def class_folders(counts: dict[str, int], *, start: int = 0) -> dict[str, bytes]:
    entries, index = {}, start
    for label, count in counts.items():
        for _ in range(count):
            entries[f"{label}/img_{index}.png"] = picture(index)
            index += 1
    return entries


def as_zip(entries: dict[str, bytes]) -> bytes:
    return zip_bytes(entries)


def as_targz(entries: dict[str, bytes]) -> bytes:
    def add(archive: tarfile.TarFile) -> None:
        for name, data in entries.items():
            tar_add_file(archive, name, data)

    return targz_bytes(add)


def truncated_jpeg() -> bytes:
    whole = frame_bytes((200, 30, 30), size=(64, 48), fmt="JPEG")
    return whole[: len(whole) // 2]


def gif_bytes() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, "GIF")
    return buffer.getvalue()


def zip_with_control_char_folder() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ok/a.png", picture(1))
        archive.writestr("cr\x07ack/b.png", picture(2))
    return buffer.getvalue()


def upload(api, dataset: str, data: bytes, filename: str = "photos.zip"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return api.post(
        f"/api/v1/datasets/{dataset}/images/",
        {"archive": SimpleUploadedFile(filename, data)},
        format="multipart",
    )


def import_now(api, dataset: str, data: bytes, filename: str = "photos.zip") -> dict:
    """Upload over the API, run the job as the worker does; the job as the API shows it."""
    response = upload(api, dataset, data, filename)
    assert response.status_code == 202, response.content
    job = response.json()
    assert job["state"] == "queued" and job["kind"] == "dataset_import"
    job_run(job["id"])
    return api.get(f"/api/v1/jobs/{job['id']}/").json()
