"""What judges a station's frames changes in one process; the very next frame that
another worker process serves is judged by the new facts.

Two real uvicorn processes share the test database with no channel layer
between them (each has its own in-memory one): nothing tells them about the
change, so only what every frame reads back from the database can make them
see it. Each worker has served a frame first, so whatever it caches is warm.
"""

import datetime as dt

import pytest
import requests

from inspection.models import Inspection
from masterdata.models import DefectType
from models_registry.services import deployment_deactivate, label_mappings_update
from tests import factories
from tests.conftest import committed_db
from tests.images import GREEN, frame_bytes
from tests.registry import ready_version
from tests.servers import asgi_servers

pytestmark = [pytest.mark.slow, committed_db]


@pytest.fixture
def line_workers(tmp_path, _media_root):
    plant = factories.plant(code="PL1")
    line = factories.line(code="L1", plant_obj=plant)
    station, token = factories.station_with_token(code="ST1", line_obj=line)
    version = ready_version(model_name="bottle")
    deployment = factories.deployment(
        station_obj=station, version=version, confidence_threshold=0.5
    )
    with asgi_servers(2, data_dir=tmp_path) as servers:
        setup = {
            "servers": servers,
            "token": token,
            "station": station,
            "line": line,
            "plant": plant,
            "version": version,
            "deployment": deployment,
        }
        for server in servers:  # both workers have judged a frame: their caches are warm
            assert post(server, setup).status_code == 201
        yield setup


def post(server, setup, **fields) -> requests.Response:
    return requests.post(
        f"{server.url}/api/v1/inspections/",
        headers={"Authorization": f"Token {setup['token']}"},
        data={"station": "ST1", **fields},
        files={"image": ("f.jpg", frame_bytes(GREEN), "image/jpeg")},
        timeout=30,
    )


def test_registry_changes_judge_the_next_frame_on_every_worker(line_workers):
    worker_a, worker_b = line_workers["servers"]
    station, version = line_workers["station"], line_workers["version"]
    before = post(worker_b, line_workers).json()
    assert (before["verdict"], before["defect_type"]) == ("fail", "missing_cap")

    # New thresholds: this defect type must always be reviewed.
    factories.deployment(
        station_obj=station,
        version=version,
        confidence_threshold=0.5,
        always_review=list(DefectType.objects.filter(code="missing_cap")),
    )
    assert post(worker_b, line_workers).json()["verdict"] == "review"
    assert post(worker_a, line_workers).json()["verdict"] == "review"

    # The label now means another defect type.
    factories.defect_type(code="scratch")
    label_mappings_update(version=version, mapping={"missing_cap": "scratch"})
    remapped = post(worker_a, line_workers).json()
    assert (remapped["defect_type"], remapped["verdict"]) == ("scratch", "fail")

    # Another version takes over; then nothing serves the station.
    newer = ready_version(model_name="bottle")
    current = factories.deployment(station_obj=station, version=newer, confidence_threshold=0.5)
    assert post(worker_b, line_workers).json()["model_version"]["version"] == newer.number
    deployment_deactivate(deployment=current)
    refused = post(worker_a, line_workers)
    assert refused.status_code == 409, refused.text
    assert "No model is deployed to station ST1" in refused.json()["detail"]


def test_master_data_changes_apply_to_the_next_frame_on_every_worker(line_workers):
    worker_a, worker_b = line_workers["servers"]
    line, plant = line_workers["line"], line_workers["plant"]
    first = factories.product(sku="CAP-A", lines=[line])
    assert post(worker_a, line_workers).json()["product"] == "CAP-A"

    second = factories.product(sku="CAP-B", lines=[line])
    crowded = post(worker_b, line_workers)
    assert crowded.status_code == 400, crowded.text
    assert "runs several products (CAP-A, CAP-B)" in crowded.text

    first.archived = True
    first.save(update_fields=["archived"])
    assert post(worker_a, line_workers).json()["product"] == "CAP-B"
    second.lines.remove(line)
    assert post(worker_b, line_workers).json()["product"] is None

    factories.shift(plant_obj=plant, name="Day and night", start=dt.time(0), end=dt.time(0))  # 24 h
    frame = post(worker_a, line_workers).json()
    assert Inspection.objects.get(pk=frame["id"]).shift.name == "Day and night"
