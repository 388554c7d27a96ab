"""Master data over the API, with admin's rules: roles, protected deletes, archive, tokens."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from masterdata.models import DefectType, Line, Plant, Product, Shift, Station
from masterdata.tokens import hash_station_token
from tests import factories
from tests.images import GREEN, frame_bytes

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.default_format = "json"
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(user)}")
    return client


@pytest.fixture
def api() -> APIClient:
    return client_for(factories.engineer(username="qe"))


def assert_error(response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    for word in words:
        assert word in body["detail"], body
    return body


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
    return {"plant": plant, "line": line, "station": station, "product": product}


# --- Setting a plant up -------------------------------------------------------------


def test_engineer_sets_up_a_plant_with_api_calls_only(api):
    assert (
        api.post(
            "/api/v1/plants/", {"code": "LYON", "name": "Lyon", "time_zone": "Europe/Paris"}
        ).status_code
        == 201
    )
    shift = api.post(
        "/api/v1/plants/LYON/shifts/", {"name": "night", "start": "22:00", "end": "06:00"}
    )
    line = api.post("/api/v1/lines/", {"code": "L1", "name": "Cups", "plant": "LYON"})
    station = api.post("/api/v1/stations/", {"code": "L1-CAP", "line": "L1"})
    product = api.post("/api/v1/products/", {"sku": "YOG-125", "name": "Yogurt", "lines": ["L1"]})
    defect = api.post(
        "/api/v1/defect-types/",
        {"code": "missing_cap", "name": "Missing cap", "severity": "critical"},
    )

    assert [r.status_code for r in (shift, line, station, product, defect)] == [201] * 5
    assert shift.json()["crosses_midnight"] is True
    assert line.headers["Location"] == "http://testserver/api/v1/lines/L1/"
    body = station.json()
    assert body["token"].startswith("lss_") and body["plant"] == "LYON"
    assert Station.objects.get(code="L1-CAP").token_hash == hash_station_token(body["token"])
    assert station.headers["Cache-Control"] == "no-store"
    assert "token" not in api.get("/api/v1/stations/L1-CAP/").json()  # shown once only
    plant = api.get("/api/v1/plants/LYON/").json()
    assert plant["lines"] == ["L1"] and [s["name"] for s in plant["shifts"]] == ["night"]
    assert api.get("/api/v1/products/YOG-125/").json()["lines"] == ["L1"]
    assert DefectType.objects.get(code="missing_cap").severity == "critical"


def test_a_new_stations_token_authenticates_its_device(api):
    factories.line(code="L1")
    token = api.post("/api/v1/stations/", {"code": "S1", "line": "L1"}).json()["token"]

    device = APIClient()
    device.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert device.get("/api/v1/stations/S1/model/").status_code != 401


def test_patch_changes_only_the_fields_named(api):
    factories.plant(code="LYON", name="Lyon", time_zone="Europe/Paris")

    response = api.patch("/api/v1/plants/LYON/", {"name": "Lyon East"}, format="json")

    assert response.status_code == 200
    plant = Plant.objects.get(code="LYON")
    assert (plant.name, plant.time_zone) == ("Lyon East", "Europe/Paris")


def test_product_lines_are_replaced_by_codes(api):
    line1, line2 = factories.line(code="L1"), factories.line(code="L2")
    factories.product(sku="YOG", lines=[line1])

    response = api.patch("/api/v1/products/YOG/", {"lines": ["L2"]}, format="json")

    assert response.json()["lines"] == ["L2"]
    assert list(Product.objects.get(sku="YOG").lines.all()) == [line2]


def test_shift_can_be_renamed_and_deleted(api):
    plant = factories.plant(code="LYON")
    factories.shift(plant_obj=plant, name="early", start="06:00", end="14:00")

    renamed = api.patch("/api/v1/plants/LYON/shifts/early/", {"name": "morning"}, format="json")
    deleted = api.delete("/api/v1/plants/LYON/shifts/morning/")

    assert renamed.json()["name"] == "morning"
    assert deleted.status_code == 204
    assert not Shift.objects.exists()


# --- Bad input: 400 with a sentence, nothing written ------------------------------------


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/v1/plants/", {"code": "has space", "name": "x"}, "code"),
        ("/api/v1/plants/", {"code": "P1", "name": "x", "time_zone": "Mars/Olympus"}, "time_zone"),
        ("/api/v1/plants/", {"code": "P1", "name": 7}, "name"),
        ("/api/v1/lines/", {"code": "L9", "plant": "NOPE"}, "plant"),
        ("/api/v1/stations/", {"code": "S9"}, "line"),
        ("/api/v1/products/", {"sku": "X1", "name": "x", "lines": ["NOPE"]}, "lines"),
        ("/api/v1/defect-types/", {"code": "d1", "name": "d", "severity": "fatal"}, "severity"),
        ("/api/v1/plants/LYON/shifts/", {"name": "n", "start": "25:00", "end": "06:00"}, "start"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(api, url, body, field):
    plant = factories.plant(code="LYON")
    counts = [m.objects.count() for m in (Plant, Line, Station, Product, DefectType, Shift)]

    response = api.post(url, body, format="json")

    assert_error(response, 400, field)
    assert field in response.json()["errors"]
    assert [m.objects.count() for m in (Plant, Line, Station, Product, DefectType, Shift)] == counts
    assert Plant.objects.get(pk=plant.pk).code == "LYON"


def test_duplicate_code_is_refused(api):
    factories.plant(code="LYON", name="first")

    response = api.post("/api/v1/plants/", {"code": "LYON", "name": "second"}, format="json")

    assert_error(response, 400, "code")
    assert list(Plant.objects.values_list("name", flat=True)) == ["first"]


def test_duplicate_shift_name_in_a_plant_is_refused(api):
    plant = factories.plant(code="LYON")
    factories.shift(plant_obj=plant, name="night", start="22:00", end="06:00")

    response = api.post(
        "/api/v1/plants/LYON/shifts/", {"name": "night", "start": "21:00", "end": "05:00"}
    )

    assert_error(response, 400, "already exists")
    assert Shift.objects.count() == 1


def test_an_archived_plant_is_not_picked_for_a_new_line(api):
    factories.plant(code="OLD", archived=True)

    response = api.post("/api/v1/lines/", {"code": "L9", "plant": "OLD"}, format="json")

    assert_error(response, 400, "OLD is archived")
    assert not Line.objects.filter(code="L9").exists()


def test_unknown_code_is_a_404_that_names_it(api):
    assert_error(api.get("/api/v1/stations/NOPE/"), 404, "no station with code 'NOPE'")
    assert_error(api.get("/api/v1/plants/NOPE/shifts/"), 404, "no plant with code 'NOPE'")


# --- Retire, don't delete ----------------------------------------------------------------

REFERRED = {
    "station": ("/api/v1/stations/L1-CAP/", ["1 deployment", "2 inspections"], "active: false"),
    "line": ("/api/v1/lines/L1/", ["2 inspections", "1 station"], "archived: true"),
    "product": ("/api/v1/products/YOG-125/", ["1 deployment", "2 inspections"], "archived: true"),
    "plant": ("/api/v1/plants/LYON/", ["1 line"], "archived: true"),
}


@pytest.mark.parametrize("key", list(REFERRED))
def test_delete_of_what_history_refers_to_is_a_409_naming_it(api, history, key):
    url, references, hint = REFERRED[key]

    response = api.delete(url)

    body = assert_error(response, 409, hint, *references)
    assert "cannot be deleted" in body["detail"]
    assert type(history[key]).objects.filter(pk=history[key].pk).exists()


def test_archive_hides_nothing_it_keeps_history_and_restores(api, history):
    archived = api.patch("/api/v1/products/YOG-125/", {"archived": True}, format="json")
    restored = api.patch("/api/v1/products/YOG-125/", {"archived": False}, format="json")

    assert archived.json()["archived"] is True
    assert restored.json()["archived"] is False
    assert history["product"].inspections.count() == 2


def test_deactivated_station_is_refused_by_the_frame_api(api):
    station, token = factories.station_with_token(code="S1")

    api.patch("/api/v1/stations/S1/", {"active": False}, format="json")

    device = APIClient()
    device.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    frame = SimpleUploadedFile("f.jpg", frame_bytes(GREEN), content_type="image/jpeg")
    response = device.post("/api/v1/inspections/", {"station": "S1", "image": frame})
    assert_error(response, 403, "inactive")
    assert Station.objects.get(pk=station.pk).active is False


def test_unreferenced_rows_are_deleted(api):
    factories.defect_type(code="scratch")
    factories.line(code="L7")

    assert api.delete("/api/v1/defect-types/scratch/").status_code == 204
    assert api.delete("/api/v1/lines/L7/").status_code == 204
    assert not DefectType.objects.filter(code="scratch").exists()
    assert not Line.objects.filter(code="L7").exists()


# --- Device tokens --------------------------------------------------------------------


def test_rotating_a_token_returns_the_new_one_once_and_refuses_the_old_at_once(api):
    _station, old = factories.station_with_token(code="S1")
    device = APIClient()
    device.credentials(HTTP_AUTHORIZATION=f"Token {old}")
    assert device.get("/api/v1/stations/S1/model/").status_code != 401

    response = api.post("/api/v1/stations/S1/rotate-token/")

    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    new = response.json()["token"]
    assert new.startswith("lss_") and new != old
    assert response.json()["token_prefix"] == new[:12]
    assert_error(device.get("/api/v1/stations/S1/model/"), 401, "revoked")
    device.credentials(HTTP_AUTHORIZATION=f"Token {new}")
    assert device.get("/api/v1/stations/S1/model/").status_code != 401


def test_revoking_a_token_refuses_the_device(api):
    station, token = factories.station_with_token(code="S1")

    response = api.post("/api/v1/stations/S1/revoke-token/")

    assert response.json()["token"] is None
    assert Station.objects.get(pk=station.pk).has_token is False
    device = APIClient()
    device.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert device.get("/api/v1/stations/S1/model/").status_code == 401


# --- Who may do what ---------------------------------------------------------------------

READS = [
    "/api/v1/plants/",
    "/api/v1/plants/LYON/",
    "/api/v1/plants/LYON/shifts/",
    "/api/v1/plants/LYON/shifts/night/",
    "/api/v1/lines/",
    "/api/v1/lines/L1/",
    "/api/v1/stations/",
    "/api/v1/stations/S1/",
    "/api/v1/products/",
    "/api/v1/products/YOG/",
    "/api/v1/defect-types/",
    "/api/v1/defect-types/scratch/",
]
WRITES = [
    ("post", "/api/v1/plants/", {"code": "P2", "name": "p"}),
    ("patch", "/api/v1/plants/LYON/", {"name": "x"}),
    ("delete", "/api/v1/plants/LYON/", None),
    ("post", "/api/v1/plants/LYON/shifts/", {"name": "day", "start": "06:00", "end": "14:00"}),
    ("patch", "/api/v1/plants/LYON/shifts/night/", {"name": "x"}),
    ("delete", "/api/v1/plants/LYON/shifts/night/", None),
    ("post", "/api/v1/lines/", {"code": "L2", "plant": "LYON"}),
    ("patch", "/api/v1/lines/L1/", {"name": "x"}),
    ("delete", "/api/v1/lines/L1/", None),
    ("post", "/api/v1/stations/", {"code": "S2", "line": "L1"}),
    ("patch", "/api/v1/stations/S1/", {"description": "x"}),
    ("delete", "/api/v1/stations/S1/", None),
    ("post", "/api/v1/stations/S1/rotate-token/", None),
    ("post", "/api/v1/stations/S1/revoke-token/", None),
    ("post", "/api/v1/products/", {"sku": "P2", "name": "p"}),
    ("patch", "/api/v1/products/YOG/", {"name": "x"}),
    ("delete", "/api/v1/products/YOG/", None),
    ("post", "/api/v1/defect-types/", {"code": "d2", "name": "d"}),
    ("patch", "/api/v1/defect-types/scratch/", {"name": "x"}),
    ("delete", "/api/v1/defect-types/scratch/", None),
]


@pytest.fixture
def small_plant():
    plant = factories.plant(code="LYON")
    factories.shift(plant_obj=plant, name="night", start="22:00", end="06:00")
    line = factories.line(code="L1", plant_obj=plant)
    _station, token = factories.station_with_token(code="S1", line_obj=line)
    factories.product(sku="YOG", lines=[line])
    factories.defect_type(code="scratch")
    return token


@pytest.mark.parametrize("role", ["viewer", "inspector", "engineer"])
def test_every_role_reads_master_data(small_plant, role):
    client = client_for(getattr(factories, role)())
    assert [client.get(url).status_code for url in READS] == [200] * len(READS)


@pytest.mark.parametrize("role", ["viewer", "inspector"])
@pytest.mark.parametrize(("method", "url", "body"), WRITES)
def test_viewers_and_inspectors_change_nothing(small_plant, role, method, url, body):
    client = client_for(getattr(factories, role)())
    before = Station.objects.get(code="S1").token_hash

    response = getattr(client, method)(url, body, format="json")

    assert_error(response, 403, "permission")
    assert Plant.objects.get().name == "Plant LYON"
    assert Station.objects.get(code="S1").token_hash == before
    assert (Line.objects.count(), Product.objects.count(), Shift.objects.count()) == (1, 1, 1)


@pytest.mark.parametrize(("method", "url", "body"), WRITES)
def test_engineers_may_make_every_change(small_plant, api, method, url, body):
    response = getattr(api, method)(url, body, format="json")
    # The plant and line are referred to by the station and the line: their delete is a 409.
    assert response.status_code in (200, 201, 204, 409), response.content


def test_a_station_token_and_no_token_are_refused(small_plant):
    device = APIClient()
    device.credentials(HTTP_AUTHORIZATION=f"Token {small_plant}")
    assert_error(device.get("/api/v1/plants/"), 403, "permission")
    assert APIClient().get("/api/v1/plants/").status_code == 401
