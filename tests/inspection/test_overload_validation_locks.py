"""A version's validation never holds up the frames it judges, on PostgreSQL.

Every frame's INSERT takes ``FOR KEY SHARE`` on its model version row (the
foreign key, checked at commit: Django's foreign keys are deferred).
Validation used to lock that row ``FOR UPDATE``, which conflicts with it:
frames of a version being (re-)validated waited for the validation's
transaction, and could deadlock with it. ``FOR NO KEY UPDATE`` does not.
"""

import threading
import time

import pytest
from django.db import connection, connections, transaction

from inspection.models import Inspection
from inspection.services import inspection_create
from models_registry.choices import VersionStatus
from models_registry.validation.service import validation_apply
from tests.conftest import committed_db
from tests.images import RED, frame_bytes
from tests.registry import cached_sandbox

pytestmark = [committed_db]


def test_a_frame_does_not_wait_for_its_versions_validation(line_setup, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("Row locks of this kind exist on PostgreSQL; SQLite locks the whole file.")
    version = line_setup["version"]
    result = cached_sandbox(version=version, work_dir=tmp_path)
    answers: list = []

    def frame() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '3s'")
            started = time.monotonic()
            inspection = inspection_create(station=line_setup["station"], image=frame_bytes(RED))
            answers.append((inspection.pk, time.monotonic() - started))
        except BaseException as error:
            answers.append(error)
        finally:
            connections.close_all()

    with transaction.atomic():
        # The validation's write of the version row, its lock held until this commits.
        validated = validation_apply(version=version, result=result, started=time.monotonic())
        poster = threading.Thread(target=frame)
        poster.start()
        poster.join(timeout=60)

    assert len(answers) == 1
    assert not isinstance(answers[0], BaseException), answers[0]
    pk, seconds = answers[0]
    assert seconds < 3
    assert Inspection.objects.filter(pk=pk, model_version=version).exists()
    assert validated.status == VersionStatus.READY
