"""Master data admin: lists, archiving, pickers without archived rows, the plant's calendar."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from masterdata.models import Line, Plant, Station
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def engineer_client(client):
    client.force_login(factories.engineer())
    return client


def queries_to_list(client, name: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse(f"admin:masterdata_{name}_changelist"))
    assert response.status_code == 200
    return len(queries)


def add_rows(count: int) -> None:
    plant = factories.plant()
    for _ in range(count):
        line = factories.line(plant_obj=plant)
        factories.station(line_obj=line)
        factories.product(lines=[line, factories.line(plant_obj=plant)])
        factories.defect_type()


@pytest.mark.parametrize("name", ["plant", "line", "station", "product", "defecttype"])
def test_list_pages_cost_the_same_queries_for_3_or_30_rows(engineer_client, name):
    add_rows(3)
    few = queries_to_list(engineer_client, name)
    add_rows(27)

    assert queries_to_list(engineer_client, name) == few


def test_station_list_shows_line_plant_and_token_state_and_finds_by_line(engineer_client):
    plant = factories.plant(code="LYON")
    factories.station(code="L1-CAP", line_obj=factories.line(code="L1", plant_obj=plant))
    factories.station(code="L2-CAP", line_obj=factories.line(code="L2", plant_obj=plant))

    response = engineer_client.get(reverse("admin:masterdata_station_changelist"), {"q": "L2"})

    assert [s.code for s in response.context["cl"].result_list] == ["L2-CAP"]
    page = response.content.decode()
    assert "LYON" in page and "none: the device is refused" in page


def test_archive_and_restore_actions(engineer_client):
    kept = factories.defect_type(code="crack")
    retired = factories.defect_type(code="old_scratch")
    changelist = reverse("admin:masterdata_defecttype_changelist")

    response = engineer_client.post(
        changelist, {"action": "archive", "_selected_action": [retired.pk]}, follow=True
    )

    assert "Archived 1 defect type" in response.content.decode()
    retired.refresh_from_db()
    kept.refresh_from_db()
    assert retired.archived and not kept.archived
    only_archived = engineer_client.get(changelist, {"archived__exact": "1"})
    assert [d.code for d in only_archived.context["cl"].result_list] == ["old_scratch"]

    engineer_client.post(changelist, {"action": "restore", "_selected_action": [retired.pk]})

    retired.refresh_from_db()
    assert not retired.archived


def test_deactivate_and_activate_station_actions(engineer_client):
    station = factories.station(code="S1")
    changelist = reverse("admin:masterdata_station_changelist")

    engineer_client.post(changelist, {"action": "deactivate", "_selected_action": [station.pk]})
    station.refresh_from_db()
    assert not station.active

    engineer_client.post(changelist, {"action": "activate", "_selected_action": [station.pk]})
    station.refresh_from_db()
    assert station.active


# --- Pickers ------------------------------------------------------------------


def choices(response, field: str) -> set[str]:
    form = response.context["adminform"].form
    return {str(obj) for obj in form.fields[field].queryset}


def test_pickers_leave_out_archived_plants_and_lines(engineer_client):
    open_plant = factories.plant(code="LYON")
    closed_plant = factories.plant(code="OLD", archived=True)
    factories.line(code="L1", plant_obj=open_plant)
    factories.line(code="L0", plant_obj=open_plant, archived=True)

    line_form = engineer_client.get(reverse("admin:masterdata_line_add"))
    station_form = engineer_client.get(reverse("admin:masterdata_station_add"))
    product_form = engineer_client.get(reverse("admin:masterdata_product_add"))

    assert choices(line_form, "plant") == {str(open_plant)}
    assert choices(station_form, "line") == {"L1"}
    assert choices(product_form, "lines") == {"L1"}
    refused = engineer_client.post(
        reverse("admin:masterdata_line_add"), {"code": "L9", "plant": closed_plant.pk}
    )
    assert refused.status_code == 200
    assert "Select a valid choice" in refused.content.decode()
    assert not Line.objects.filter(code="L9").exists()


def test_a_row_keeps_the_archived_line_it_already_uses(engineer_client):
    line = factories.line(code="L0", archived=True)
    current = factories.line(code="L1", plant_obj=line.plant)
    product = factories.product(sku="YOG", lines=[line])
    url = reverse("admin:masterdata_product_change", args=[product.pk])

    assert choices(engineer_client.get(url), "lines") == {"L0", "L1"}
    response = engineer_client.post(
        url, {"sku": "YOG", "name": "Yogurt", "lines": [line.pk, current.pk]}
    )

    assert response.status_code == 302
    assert sorted(product.lines.values_list("code", flat=True)) == ["L0", "L1"]


# --- Plant with its shift calendar -------------------------------------------


def plant_form(**overrides) -> dict:
    data = {
        "code": "LYON",
        "name": "Lyon",
        "time_zone": "Europe/Paris",
        "shifts-TOTAL_FORMS": "2",
        "shifts-INITIAL_FORMS": "0",
        "shifts-MIN_NUM_FORMS": "0",
        "shifts-MAX_NUM_FORMS": "1000",
        "shifts-0-name": "Day",
        "shifts-0-start": "06:00",
        "shifts-0-end": "18:00",
        "shifts-1-name": "Night",
        "shifts-1-start": "18:00",
        "shifts-1-end": "06:00",
    }
    return {**data, **overrides}


def test_plant_is_added_with_its_shift_calendar(engineer_client):
    response = engineer_client.post(reverse("admin:masterdata_plant_add"), plant_form())

    assert response.status_code == 302
    plant = Plant.objects.get(code="LYON")
    assert [(s.name, s.crosses_midnight) for s in plant.shifts.all()] == [
        ("Day", False),
        ("Night", True),
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"time_zone": "Mars/Olympus"}, "Select a valid choice"),
        ({"code": "LYON NORD"}, "Use 1-50 letters"),
        ({"shifts-1-name": "Day"}, "Please correct the duplicate data for name"),
    ],
)
def test_bad_plant_form_saves_nothing(engineer_client, overrides, message):
    response = engineer_client.post(reverse("admin:masterdata_plant_add"), plant_form(**overrides))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Plant.objects.exists()


def test_duplicate_station_code_is_a_form_error(engineer_client):
    station = factories.station(code="S1")

    response = engineer_client.post(
        reverse("admin:masterdata_station_add"),
        {"code": "S1", "line": station.line.pk, "active": "on"},
    )

    assert "Station with this Code already exists" in response.content.decode()
    assert Station.objects.count() == 1
