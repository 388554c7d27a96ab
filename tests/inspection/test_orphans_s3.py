"""The orphans sweep on S3 (moto_server on loopback), through the same storage API calls."""

import datetime as dt
import os
import time

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from inspection.models import Inspection
from inspection.orphans import orphans_sweep
from tests.images import GREEN, RED, frame_bytes
from tests.inspection.test_api_frames import post_frame
from tests.inspection.test_scale_out import BUCKET, moto_s3  # noqa: F401 - the fixture


def _keys(client) -> set[str]:
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix="frames/")
    return {item["Key"] for item in listing.get("Contents", [])}


def test_orphans_are_found_and_cleaned_on_s3_only_past_the_grace_period(
    moto_s3,  # noqa: F811 - pytest passes the imported fixture
    line_setup,
    api_client,
):
    ids = [
        post_frame(api_client, token=line_setup["token"], image=frame_bytes(c)).json()["id"]
        for c in (RED, GREEN)
    ]
    kept, lost = Inspection.objects.filter(pk__in=ids).order_by("pk")
    Inspection.objects.filter(pk__in=ids).update(received_at=timezone.now() - dt.timedelta(hours=2))
    folder = os.path.dirname(kept.image.name)
    orphan = default_storage.save(f"{folder}/crashed.jpg", ContentFile(frame_bytes(RED)))
    default_storage.delete(lost.image.name)
    client = moto_s3["client"]
    assert _keys(client) == {kept.image.name, orphan}

    within_grace = orphans_sweep(grace_seconds=3600)
    assert within_grace.files_without_row == 0, "a file just written is never an orphan"
    assert within_grace.rows_without_file == 1
    assert Inspection.objects.get(pk=lost.pk).image.name == ""
    assert orphan in _keys(client)

    time.sleep(1.1)  # S3 keeps modification times to the second
    past_grace = orphans_sweep(grace_seconds=0)
    assert past_grace.files_sample == [orphan]
    assert _keys(client) == {kept.image.name}
    assert Inspection.objects.get(pk=kept.pk).image.name == kept.image.name
