"""Master data that deployments or inspections refer to cannot be deleted; archiving is offered."""

import pytest
from django.urls import reverse

from masterdata.models import DefectType, Line, Plant, Product, Station
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def engineer_client(client):
    client.force_login(factories.engineer())
    return client


@pytest.fixture
def history():
    """A station that served a model and judged two frames, one of them a defect."""
    plant = factories.plant(code="LYON")
    line = factories.line(code="L1", plant_obj=plant)
    station = factories.station(code="L1-CAP", line_obj=line)
    product = factories.product(sku="YOG-125", lines=[line])
    deployment = factories.deployment(station_obj=station, product_obj=product)
    factories.inspection_row(deployment_obj=deployment, product_obj=product)
    factories.inspection_row(deployment_obj=deployment, verdict="fail", product_obj=product)
    defect = DefectType.objects.get(code="missing_cap")
    return {"plant": plant, "line": line, "station": station, "product": product, "defect": defect}


REFERRED = {
    "station": ["1 deployment", "2 inspections"],
    "line": ["2 inspections", "1 station"],
    "product": ["1 deployment", "2 inspections"],
    "defect": ["1 inspection", "1 label mapping"],  # only the failed frame
    "plant": ["1 line"],
}
ADMIN_NAME = {"defect": "defecttype"}


def _admin_url(key: str, view: str, *args) -> str:
    return reverse(f"admin:masterdata_{ADMIN_NAME.get(key, key)}_{view}", args=args)


@pytest.mark.parametrize("key", list(REFERRED))
def test_delete_page_refuses_and_points_to_archiving(engineer_client, history, key):
    obj = history[key]
    url = _admin_url(key, "delete", obj.pk)

    page = engineer_client.get(url)
    refused = engineer_client.post(url, {"post": "yes"})

    text = page.content.decode()
    assert "Cannot delete" in text
    for reference in REFERRED[key]:
        assert reference in text
    hint = "Deactivate the station instead" if key == "station" else "Archive it instead"
    assert hint in text
    assert refused.status_code == 200 and "Cannot delete" in refused.content.decode()
    assert type(obj).objects.filter(pk=obj.pk).exists()


@pytest.mark.parametrize("key", list(REFERRED))
def test_bulk_delete_action_is_refused_too(engineer_client, history, key):
    obj = history[key]
    model = type(obj)
    spare = {
        "station": lambda: factories.station(line_obj=history["line"]),
        "line": lambda: factories.line(plant_obj=history["plant"]),
        "product": lambda: factories.product(),
        "defect": lambda: factories.defect_type(),
        "plant": lambda: factories.plant(),
    }[key]()  # deletable on its own, refused along with the protected one
    before = model.objects.count()

    response = engineer_client.post(
        _admin_url(key, "changelist"),
        {"action": "delete_selected", "_selected_action": [obj.pk, spare.pk], "post": "yes"},
    )

    assert response.status_code == 200
    text = response.content.decode()
    assert "Nothing was deleted" in text
    for reference in REFERRED[key]:
        assert reference in text
    assert model.objects.count() == before


def test_master_data_nothing_refers_to_can_still_be_deleted(engineer_client, history):
    spare = factories.defect_type(code="unused")

    response = engineer_client.post(_admin_url("defect", "delete", spare.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not DefectType.objects.filter(code="unused").exists()


def test_plant_without_lines_is_deleted_with_its_shift_calendar(engineer_client):
    plant = factories.plant(code="EMPTY")
    factories.shift(plant_obj=plant, name="Day", start="06:00", end="18:00")

    engineer_client.post(_admin_url("plant", "delete", plant.pk), {"post": "yes"})

    assert not Plant.objects.filter(code="EMPTY").exists()


def test_archived_history_stays_readable(engineer_client, history):
    """After archiving instead of deleting, inspections still point at the same rows."""
    for key in ("line", "product", "defect", "plant"):
        engineer_client.post(
            _admin_url(key, "changelist"),
            {"action": "archive", "_selected_action": [history[key].pk]},
        )
    engineer_client.post(
        _admin_url("station", "changelist"),
        {"action": "deactivate", "_selected_action": [history["station"].pk]},
    )

    assert Line.objects.get(code="L1").archived
    assert Product.objects.get(sku="YOG-125").archived
    assert Plant.objects.get(code="LYON").archived
    assert DefectType.objects.get(code="missing_cap").archived
    assert not Station.objects.get(code="L1-CAP").active
    assert history["station"].inspections.count() == 2
