"""Retention on S3 (moto_server on loopback): the same storage API calls delete the objects."""

from inspection.models import Inspection, RetentionPolicy
from inspection.retention import retention_apply
from tests.browser import scene
from tests.inspection.test_retention import aged_frame
from tests.inspection.test_scale_out import BUCKET, moto_s3  # noqa: F401 - the fixture


def _keys(client) -> set[str]:
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix="frames/")
    return {item["Key"] for item in listing.get("Contents", [])}


def test_retention_deletes_old_images_from_the_bucket_and_keeps_the_rows(
    moto_s3,  # noqa: F811 - pytest passes the imported fixture
    db,
):
    built = scene.build()
    RetentionPolicy.objects.create(plant=built.line.plant, pass_sample_percent=0)
    gone = aged_frame(built.deployments[0], days_ago=45)
    kept = scene.frame(built.deployments[0], broadcast=False, image_bytes=4)
    client = moto_s3["client"]
    assert _keys(client) == {gone.image.name, kept.image.name}

    report = retention_apply()

    assert report.plants[0].passes_images == 1
    assert _keys(client) == {kept.image.name}
    assert Inspection.objects.get(pk=gone.pk).image_deleted_at is not None
    assert Inspection.objects.get(pk=kept.pk).image.name == kept.image.name
