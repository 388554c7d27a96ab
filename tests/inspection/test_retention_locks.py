"""Retention never waits for a frame someone is deciding, and never makes them wait
(PostgreSQL: rows are locked with SKIP LOCKED, batch by batch)."""

import threading
import time

import pytest
from django.db import connection, transaction

from inspection.models import Inspection, RetentionPolicy
from inspection.retention import retention_apply
from tests.browser import scene
from tests.conftest import committed_db
from tests.inspection.test_retention import aged_frame

pytestmark = committed_db


def test_a_frame_locked_by_a_decision_is_left_for_the_next_run():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no row locks: run with DATABASE_URL=postgres://...")
    built = scene.build()
    RetentionPolicy.objects.create(plant=built.line.plant, pass_sample_percent=0)
    deployment = built.deployments[0]
    decided = aged_frame(deployment, days_ago=400, verdict="fail", review_status="not_required")
    free = aged_frame(deployment, days_ago=400, verdict="fail", review_status="not_required")
    locked, release = threading.Event(), threading.Event()

    def inspector_deciding() -> None:
        with transaction.atomic():
            Inspection.objects.select_for_update(no_key=True).get(pk=decided.pk)
            locked.set()
            release.wait(30)
        connection.close()

    holder = threading.Thread(target=inspector_deciding)
    holder.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        report = retention_apply()
        took = time.monotonic() - started
    finally:
        release.set()
        holder.join()

    assert took < 5, "retention did not wait for the decision"
    assert report.plants[0].kept_images == 1
    assert Inspection.objects.get(pk=free.pk).image_deleted_at is not None
    assert Inspection.objects.get(pk=decided.pk).image_deleted_at is None
    assert retention_apply().plants[0].kept_images == 1, "the next run takes it"
