"""manage.py seed_demo: what a newcomer and a script get, and what a second run leaves alone."""

import hashlib
import io
import json

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from masterdata import roles
from masterdata.models import DefectType, Line, Plant, Product, Shift, Station


@pytest.fixture
def demo_dir(settings, tmp_path):
    settings.LINESIGHT = {**settings.LINESIGHT, "DEMO_DIR": tmp_path / "demo"}
    return tmp_path / "demo"


def seed(*args) -> dict:
    out = io.StringIO()
    call_command("seed_demo", "--json", *args, stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())


def row_counts() -> dict[str, int]:
    from models_registry.models import Deployment, LabelMapping, MLModel, ModelVersion

    tables = [Plant, Shift, Line, Station, Product, DefectType, User, MLModel, ModelVersion]
    tables += [LabelMapping, Deployment]
    return {table.__name__: table.objects.count() for table in tables}


def get_inspections(api_client, token: str):
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return api_client.get("/api/v1/inspections/")


@pytest.mark.django_db
def test_json_lists_the_users_stations_and_what_was_created(demo_dir):
    data = seed("--no-model")

    assert [(u["username"], u["role"]) for u in data["users"]] == [
        ("engineer", roles.QUALITY_ENGINEERS),
        ("inspector", roles.INSPECTORS),
        ("viewer", roles.VIEWERS),
    ]
    assert all(len(u["password"]) >= 12 for u in data["users"])
    assert [(s["code"], s["line"]) for s in data["stations"]] == [("L1-S1", "L1"), ("L1-S2", "L1")]
    assert data["model"] is None and data["frames"] is None
    assert "plant DEMO" in data["created"] and "user engineer" in data["created"]

    plant = Plant.objects.get(code="DEMO")
    assert plant.time_zone == "Europe/Paris"
    assert [(s.name, f"{s.start:%H}-{s.end:%H}") for s in plant.shifts.order_by("start")] == [
        ("Early", "06-14"),
        ("Late", "14-22"),
        ("Night", "22-06"),
    ]
    assert set(DefectType.objects.values_list("code", "severity")) == {
        ("missing_cap", "critical"),
        ("wrong_label", "critical"),
        ("no_label", "major"),
    }
    assert list(Product.objects.get(sku="YOG-STR-330").lines.values_list("code", flat=True)) == [
        "L1"
    ]


@pytest.mark.django_db
def test_the_printed_logins_and_tokens_work(demo_dir, client, api_client):
    data = seed("--no-model")
    users = {u["username"]: u for u in data["users"]}

    assert client.login(username="engineer", password=users["engineer"]["password"])
    assert client.get("/admin/").status_code == 200  # staff, in Quality engineers
    client.logout()
    assert client.login(username="inspector", password=users["inspector"]["password"])
    assert client.get("/admin/").status_code == 302  # not staff: sent to the admin login

    assert get_inspections(api_client, users["engineer"]["api_token"]).status_code == 200
    assert users["inspector"]["api_token"] is None
    for station in data["stations"]:
        assert get_inspections(api_client, station["token"]).status_code == 200


@pytest.mark.django_db
def test_a_second_run_creates_nothing_and_the_running_stations_keep_their_tokens(
    demo_dir, api_client
):
    # `make demo` seeds, then its simulated cameras post with the printed tokens;
    # a script printing the demo's facts again must not cut them off.
    first = seed("--no-model")
    counts = row_counts()

    second = seed("--no-model")

    assert row_counts() == counts
    assert second["created"] == []
    assert [u["password"] for u in second["users"]] == [u["password"] for u in first["users"]]
    assert second["users"][0]["api_token"] == first["users"][0]["api_token"]
    assert second["stations"] == first["stations"]
    for station in first["stations"]:
        assert get_inspections(api_client, station["token"]).status_code == 200


@pytest.mark.django_db
def test_rotate_tokens_issues_new_station_tokens_and_only_those_work(demo_dir, api_client):
    first = seed("--no-model")

    second = seed("--no-model", "--rotate-tokens")

    for old, new in zip(first["stations"], second["stations"], strict=True):
        assert old["token"] != new["token"]
        assert get_inspections(api_client, old["token"]).status_code == 401
        assert get_inspections(api_client, new["token"]).status_code == 200
    assert seed("--no-model")["stations"] == second["stations"]


@pytest.mark.django_db
def test_a_station_token_rotated_in_admin_since_gets_a_working_one_again(demo_dir, api_client):
    from masterdata.services import station_token_rotate

    first = seed("--no-model")
    admin_token = station_token_rotate(station=Station.objects.get(code="L1-S1"))

    second = seed("--no-model")

    by_code = {s["code"]: s["token"] for s in second["stations"]}
    assert get_inspections(api_client, by_code["L1-S1"]).status_code == 200
    assert get_inspections(api_client, admin_token).status_code == 401
    assert by_code["L1-S2"] == first["stations"][1]["token"]


@pytest.mark.django_db
def test_a_password_its_user_changed_survives_a_second_run(demo_dir):
    first = seed("--no-model")
    inspector = User.objects.get(username="inspector")
    inspector.set_password("my own secret 42")
    inspector.save()

    second = seed("--no-model")

    inspector.refresh_from_db()
    assert inspector.check_password("my own secret 42")
    users = {u["username"]: u for u in second["users"]}
    assert users["inspector"]["password"] is None  # not shown: we no longer know it
    assert users["engineer"]["password"] == first["users"][0]["password"]


@pytest.mark.django_db
def test_master_data_people_edited_is_left_as_they_left_it(demo_dir):
    seed("--no-model")
    Plant.objects.filter(code="DEMO").update(name="Our plant", time_zone="America/Chicago")
    Shift.objects.filter(name="Night").delete()
    DefectType.objects.filter(code="no_label").update(severity="minor")

    seed("--no-model")

    plant = Plant.objects.get(code="DEMO")
    assert (plant.name, plant.time_zone) == ("Our plant", "America/Chicago")
    assert sorted(plant.shifts.values_list("name", flat=True)) == ["Early", "Late"]
    assert DefectType.objects.get(code="no_label").severity == "minor"


@pytest.mark.django_db
def test_passwords_are_kept_for_the_owner_only(demo_dir):
    data = seed("--no-model")
    credentials = demo_dir / "credentials.json"
    assert credentials.stat().st_mode & 0o077 == 0
    assert json.loads(credentials.read_text())["viewer"] == data["users"][2]["password"]


@pytest.mark.django_db
def test_text_output_prints_the_logins(demo_dir):
    out = io.StringIO()
    call_command("seed_demo", "--no-model", stdout=out)
    text = out.getvalue()
    password = json.loads((demo_dir / "credentials.json").read_text())["engineer"]
    assert f"engineer   {password}" in text
    assert "L1-S1" in text and "lss_" in text


@pytest.mark.django_db
def test_frames_option_writes_the_simulator_frames(demo_dir, tmp_path):
    data = seed("--no-model", "--frames", str(tmp_path / "frames"))
    assert data["frames"]["dir"] == str(tmp_path / "frames")
    files = sorted((tmp_path / "frames").rglob("*.jpg"))
    assert len(files) == data["frames"]["count"] == 50
    assert {f.parent.name for f in files} == {"ok", "missing_cap", "wrong_label", "no_label"}


@pytest.mark.django_db
def test_a_missing_model_zip_is_a_clear_error_and_creates_nothing(demo_dir, tmp_path):
    with pytest.raises(CommandError, match="No model artifact at"):
        seed("--model-zip", str(tmp_path / "nowhere.zip"))
    assert not Plant.objects.exists() and not User.objects.exists()


# --- The demo model: registered, validated, mapped and deployed ----------------
# These run the real validation sandbox on a tiny model (tests/tf_models.py)
# given with --model-zip, instead of training the demo CNN for a minute.


@pytest.fixture(scope="module")
def tiny_model_zip(tmp_path_factory):
    from demo.frames import CLASSES
    from tests import tf_models

    path = tmp_path_factory.mktemp("tiny") / "tiny-demo.zip"
    model = tf_models.colour_classifier(labels=CLASSES)
    path.write_bytes(tf_models.savedmodel_zip(model, labels=CLASSES))
    return path


def active_deployments():
    from models_registry.models import Deployment

    return {
        d.station.code: d
        for d in Deployment.objects.filter(is_active=True).select_related("station", "version")
    }


@pytest.mark.slow
@pytest.mark.django_db
def test_the_cached_model_is_validated_mapped_and_deployed_to_both_stations(
    demo_dir, tiny_model_zip
):
    from models_registry.models import ModelVersion

    cached = demo_dir / "model" / "yogurt-bottle.zip"  # as a first run leaves it after training
    cached.parent.mkdir(parents=True)
    cached.write_bytes(tiny_model_zip.read_bytes())

    data = seed()

    assert (data["model"]["name"], data["model"]["version"]) == ("yogurt-bottle", 1)
    assert data["model"]["status"] == "ready"
    version = ModelVersion.objects.get(model__name="yogurt-bottle", number=1)
    assert version.sha256 == hashlib.sha256(cached.read_bytes()).hexdigest()
    assert version.uploaded_by.username == "engineer"
    assert version.jpeg_draft is True  # trained on frames decoded the fast way
    assert {m.label: m.meaning for m in version.mappings.select_related("defect_type")} == {
        "ok": "no defect",
        "missing_cap": "missing_cap",
        "wrong_label": "wrong_label",
        "no_label": "no_label",
    }
    deployments = active_deployments()
    assert sorted(deployments) == ["L1-S1", "L1-S2"]
    for deployment in deployments.values():
        assert deployment.version == version
        assert deployment.confidence_threshold == 0.8
        assert deployment.pass_review_rate == 0.02
        assert deployment.activated_by.username == "engineer"


@pytest.mark.slow
@pytest.mark.django_db
def test_a_demo_station_posts_a_demo_frame_and_gets_a_verdict(
    demo_dir, tiny_model_zip, tmp_path, api_client
):
    data = seed("--model-zip", str(tiny_model_zip), "--frames", str(tmp_path / "frames"))
    station = data["stations"][0]
    frame = next((tmp_path / "frames" / "ok").glob("*.jpg"))

    api_client.credentials(HTTP_AUTHORIZATION=f"Token {station['token']}")
    with frame.open("rb") as image:
        response = api_client.post(
            "/api/v1/inspections/", {"station": station["code"], "image": image}
        )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["verdict"] in {"pass", "fail", "review"}
    assert body["model_version"] == {"model": "yogurt-bottle", "version": 1}


@pytest.mark.slow
@pytest.mark.django_db
def test_a_second_run_with_the_model_duplicates_nothing(demo_dir, tiny_model_zip):
    seed("--model-zip", str(tiny_model_zip))
    counts = row_counts()
    first = active_deployments()

    second = seed("--model-zip", str(tiny_model_zip))

    assert row_counts() == counts
    assert second["created"] == []
    assert second["model"]["version"] == 1
    assert {code: d.pk for code, d in active_deployments().items()} == {
        code: d.pk for code, d in first.items()
    }


@pytest.mark.slow
@pytest.mark.django_db
def test_what_an_engineer_changed_in_the_registry_survives_a_second_run(demo_dir, tiny_model_zip):
    from demo.frames import CLASSES
    from models_registry.models import ModelVersion
    from models_registry.services import deployment_activate, label_mappings_update
    from tests import factories

    seed("--model-zip", str(tiny_model_zip))
    version = ModelVersion.objects.get(model__name="yogurt-bottle")
    label_mappings_update(version=version, mapping={"no_label": "wrong_label"})
    other = factories.version_row(model_name="their-model", labels=CLASSES)
    station = Station.objects.get(code="L1-S1")
    theirs = deployment_activate(station=station, version=other, confidence_threshold=0.5)

    seed("--model-zip", str(tiny_model_zip))

    assert active_deployments()["L1-S1"].pk == theirs.pk
    assert version.mappings.get(label="no_label").defect_type.code == "wrong_label"


@pytest.mark.slow
@pytest.mark.django_db
def test_a_model_zip_that_does_not_validate_stops_the_seed_with_the_reason(demo_dir, tmp_path):
    import zipfile

    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("labels.txt", "ok\nmissing_cap\n")
        archive.writestr("saved_model.pb", b"not a graph")

    with pytest.raises(CommandError, match="did not validate"):
        seed("--model-zip", str(broken))
    assert active_deployments() == {}
