"""The registry API as a model pipeline uses it: token auth, JSON in and out."""

import hashlib
import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tasks_db.models import DBTaskResult
from rest_framework.test import APIClient

from models_registry import selectors
from models_registry.models import (
    DefectThreshold,
    Deployment,
    DeploymentHistory,
    LabelMapping,
    MLModel,
    ModelVersion,
)
from tests import factories
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(user)}")
    return client


@pytest.fixture
def engineer():
    return factories.engineer(username="qe")


@pytest.fixture
def api(engineer) -> APIClient:
    return client_for(engineer)


def savedmodel_zip(name: str = "bottle.zip") -> SimpleUploadedFile:
    """A small .zip shaped like an exported SavedModel; validation is not run here."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("bottle/saved_model.pb", b"\x08\x01" * 64)
        archive.writestr("bottle/variables/variables.index", b"\x00" * 32)
        archive.writestr("bottle/labels.txt", "ok\nmissing_cap\n")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="application/zip")


def upload(api: APIClient, model: str = "bottle", **fields):
    fields.setdefault("artifact", savedmodel_zip())
    return api.post(f"/api/v1/models/{model}/versions/", fields, format="multipart")


def queued_validations() -> list[DBTaskResult]:
    return list(DBTaskResult.objects.filter(task_path="models_registry.tasks.validate_version"))


def assert_error(response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    for word in words:
        assert word in body["detail"], body
    return body


# --- Models -------------------------------------------------------------------


def test_engineer_creates_a_model_and_sees_it_listed(api):
    response = api.post(
        "/api/v1/models/", {"name": "bottle", "description": "Caps and labels"}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["name"] == "bottle"
    assert response["Location"] == "http://testserver/api/v1/models/bottle/"
    listed = api.get("/api/v1/models/").json()
    assert [(m["name"], m["description"], m["version_count"]) for m in listed] == [
        ("bottle", "Caps and labels", 0)
    ]
    assert api.get(response["Location"]).json()["name"] == "bottle"


def test_duplicate_model_name_is_refused_and_nothing_changes(api):
    MLModel.objects.create(name="bottle", description="first")

    response = api.post("/api/v1/models/", {"name": "bottle"}, format="json")

    body = assert_error(response, 400, "name", "already exists")
    assert "name" in body["errors"]
    assert list(MLModel.objects.values_list("description", flat=True)) == ["first"]


@pytest.mark.parametrize("name", ["", "has space", "../etc", "x" * 51, "-leading-dash"])
def test_model_name_that_cannot_be_part_of_a_url_is_refused(api, name):
    response = api.post("/api/v1/models/", {"name": name}, format="json")

    assert_error(response, 400, "name")
    assert not MLModel.objects.exists()


@pytest.mark.parametrize("fields", [{"name": 7}, {"name": "bottle", "description": 0}])
def test_a_number_where_text_belongs_is_refused(api, fields):
    response = api.post("/api/v1/models/", fields, format="json")

    assert_error(response, 400, "string")
    assert not MLModel.objects.exists()


def test_unknown_model_is_a_404_that_says_how_to_create_it(api):
    response = api.get("/api/v1/models/nope/versions/")

    assert_error(response, 404, "nope", "POST /api/v1/models/")


# --- Uploads --------------------------------------------------------------------


def test_upload_stores_the_artifact_and_queues_exactly_one_validation(
    api, engineer, _media_root, django_capture_on_commit_callbacks
):
    MLModel.objects.create(name="bottle")
    artifact = savedmodel_zip()
    content = artifact.read()
    artifact.seek(0)

    with django_capture_on_commit_callbacks(execute=True):
        response = upload(api, artifact=artifact, notes="trained on line 3 frames")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["model"] == "bottle"
    assert body["number"] == 1
    assert body["status"] == "uploaded"
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert body["size_bytes"] == len(content)
    assert body["uploaded_by"] == "qe"
    assert body["notes"] == "trained on line 3 frames"
    assert body["artifact_format"] == "savedmodel_zip"
    assert response["Location"] == body["url"]
    assert body["url"] == "http://testserver/api/v1/models/bottle/versions/1/"

    version = ModelVersion.objects.get()
    files = stored_files(_media_root)
    assert files == [version.artifact.name]
    assert files[0].startswith("models/bottle/") and files[0].endswith("/bottle.zip")
    assert (_media_root / files[0]).read_bytes() == content

    tasks = queued_validations()
    assert len(tasks) == 1
    assert tasks[0].status == "READY"  # waiting for the worker
    assert tasks[0].args_kwargs["args"] == [version.pk]

    polled = api.get(response["Location"])
    assert polled.status_code == 200
    assert polled.json()["status"] == "uploaded"


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ("ok\nmissing_cap\ncrack\n", ["ok", "missing_cap", "crack"]),
        ("ok, missing_cap, crack", ["ok", "missing_cap", "crack"]),
        (["ok", "missing_cap", "crack"], ["ok", "missing_cap", "crack"]),
        ("ok\r\nmissing cap, or loose\r\n", ["ok", "missing cap, or loose"]),
    ],
    ids=["lines", "commas", "repeated-fields", "lines-keep-commas"],
)
def test_labels_given_at_upload_are_kept_in_output_order(api, labels, expected):
    MLModel.objects.create(name="bottle")

    response = upload(api, labels=labels)

    assert response.status_code == 201, response.content
    assert response.json()["labels"] == expected
    assert ModelVersion.objects.get().labels == expected


def test_versions_are_numbered_per_model(api):
    MLModel.objects.create(name="bottle")
    MLModel.objects.create(name="jar")

    numbers = [
        upload(api, "bottle").json()["number"],
        upload(api, "bottle").json()["number"],
        upload(api, "jar").json()["number"],
    ]

    assert numbers == [1, 2, 1]
    listed = api.get("/api/v1/models/bottle/versions/").json()
    assert [v["number"] for v in listed] == [2, 1]
    assert api.get("/api/v1/models/").json()[0]["latest_version"] == 2


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"artifact": SimpleUploadedFile("model.txt", b"hello")}, ["not a model artifact"]),
        ({"artifact": SimpleUploadedFile("model.zip", b"")}, ["empty"]),
        ({"artifact": None}, ["artifact"]),
        ({"labels": "ok\nok\ncrack"}, ["unique", "ok"]),
        ({"labels": ["ok", "x" * 101]}, ["longer than 100"]),
        ({"labels": "\n , \n"}, ["at least one label"]),
    ],
    ids=["wrong-type", "empty-file", "no-file", "duplicate-labels", "long-label", "blank-labels"],
)
def test_bad_upload_is_refused_and_leaves_nothing_behind(
    api, _media_root, django_capture_on_commit_callbacks, fields, words
):
    MLModel.objects.create(name="bottle")
    if fields.get("artifact", "") is None:
        fields.pop("artifact")
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post("/api/v1/models/bottle/versions/", {}, format="multipart")
    else:
        with django_capture_on_commit_callbacks(execute=True):
            response = upload(api, **fields)

    assert_error(response, 400, *words)
    assert not ModelVersion.objects.exists()
    assert stored_files(_media_root) == []
    assert queued_validations() == []


def test_upload_to_an_unknown_model_stores_nothing(api, _media_root):
    response = upload(api, model="ghost")

    assert_error(response, 404, "ghost")
    assert stored_files(_media_root) == []
    assert queued_validations() == []


def test_artifact_over_the_size_limit_is_refused(api, settings, _media_root):
    settings.LINESIGHT = {**settings.LINESIGHT, "MAX_ARTIFACT_BYTES": 100}
    MLModel.objects.create(name="bottle")

    response = upload(api)

    assert_error(response, 400, "limit is 100 bytes")
    assert stored_files(_media_root) == []


def test_upload_as_json_is_refused_with_a_415(api):
    MLModel.objects.create(name="bottle")

    response = api.post("/api/v1/models/bottle/versions/", {"labels": "ok"}, format="json")

    assert_error(response, 415, "multipart/form-data")


# --- Reading a version ---------------------------------------------------------


def test_version_detail_shows_everything_validation_recorded(api):
    version = factories.version_row(
        model_name="bottle",
        labels=("ok", "missing_cap"),
        mapping={"ok": None, "missing_cap": "missing_cap"},
        signature_name="serving_default",
        input_name="image",
        output_name="scores",
        serving_runtime_reason="TFLite matched the SavedModel on 16 samples (max diff 2e-06).",
        tflite_max_abs_diff=2e-6,
        warmup_latency_ms=4.5,
        tflite_latency_ms=1.25,
        validation_seconds=12.0,
        color_mode="grayscale",
    )
    station = factories.station(code="CAP-1")
    factories.deployment(station_obj=station, version=version)

    body = api.get("/api/v1/models/bottle/versions/1/").json()

    assert body["status"] == "ready"
    assert body["labels"] == ["ok", "missing_cap"]
    assert body["mappings"] == [
        {"index": 0, "label": "ok", "defect_type": None, "no_defect": True, "mapped": True},
        {
            "index": 1,
            "label": "missing_cap",
            "defect_type": "missing_cap",
            "no_defect": False,
            "mapped": True,
        },
    ]
    assert body["signature"] == {
        "signature_name": "serving_default",
        "input_name": "image",
        "output_name": "scores",
        "input_height": 32,
        "input_width": 32,
        "input_channels": 3,
        "input_dtype": "float32",
        "outputs_probabilities": True,
    }
    assert body["preprocessing"] == {
        "resize_mode": "stretch",
        "value_scale": "0_1",
        "color_mode": "grayscale",
        "resize_interpolation": "bilinear",
        "jpeg_draft": False,  # an uploaded model gets the exact decode unless it says otherwise
    }
    assert body["serving"] == {
        "runtime": "tflite",
        "reason": "TFLite matched the SavedModel on 16 samples (max diff 2e-06).",
        "tflite_max_abs_diff": 2e-6,
        "warmup_latency_ms": 4.5,
        "tflite_latency_ms": 1.25,
    }
    assert body["validation_seconds"] == 12.0


def test_invalid_version_shows_the_reason(api):
    factories.version_row(
        model_name="bottle",
        status="invalid",
        status_reason="The model has 4 outputs but 3 labels were given.",
    )

    body = api.get("/api/v1/models/bottle/versions/1/").json()

    assert body["status"] == "invalid"
    assert body["status_reason"] == "The model has 4 outputs but 3 labels were given."


def test_unknown_version_number_is_a_404(api):
    factories.version_row(model_name="bottle")

    assert_error(api.get("/api/v1/models/bottle/versions/7/"), 404, "no version 7")


# --- Mapping -------------------------------------------------------------------------


def mapping_of(version) -> dict:
    return {m.label: m.meaning for m in version.mappings.select_related("defect_type")}


def test_labels_are_mapped_to_defect_types_or_no_defect(api):
    version = factories.version_row(
        model_name="bottle", labels=("good", "cap", "scratch"), mapping={}
    )
    factories.defect_type(code="missing_cap")
    factories.defect_type(code="scratch")

    response = api.put(
        "/api/v1/models/bottle/versions/1/mapping/",
        {"mapping": {"good": None, "cap": "missing_cap", "scratch": "scratch"}},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert [m["defect_type"] for m in response.json()["mappings"]] == [
        None,
        "missing_cap",
        "scratch",
    ]
    assert mapping_of(version) == {"good": "no defect", "cap": "missing_cap", "scratch": "scratch"}


def test_labels_not_named_keep_their_mapping(api):
    version = factories.version_row(model_name="bottle", labels=("ok", "crack"))
    factories.defect_type(code="chip")

    api.put(
        "/api/v1/models/bottle/versions/1/mapping/",
        {"mapping": {"crack": "chip"}},
        format="json",
    )

    assert mapping_of(version) == {"ok": "no defect", "crack": "chip"}


@pytest.mark.parametrize(
    ("mapping", "words"),
    [
        ({"ok": None, "crack": "no_such_code"}, ["Unknown defect type", "no_such_code"]),
        ({"ok": None, "dent": "crack"}, ["no label", "dent"]),
        ({}, ["mapping"]),
        ({"ok": 5}, ["mapping"]),
    ],
    ids=["unknown-code", "unknown-label", "empty", "not-a-code"],
)
def test_bad_mapping_is_refused_and_nothing_changes(api, mapping, words):
    version = factories.version_row(model_name="bottle", labels=("ok", "crack"), mapping={})

    response = api.put(
        "/api/v1/models/bottle/versions/1/mapping/", {"mapping": mapping}, format="json"
    )

    assert_error(response, 400, *words)
    assert mapping_of(version) == {"ok": "unmapped", "crack": "unmapped"}


def test_remapping_a_deployed_version_applies_but_must_keep_a_passing_label(api):
    version = factories.version_row(model_name="bottle", labels=("ok", "crack"))
    factories.defect_type(code="chip")
    factories.deployment(station_obj=factories.station(code="CAP-1"), version=version)

    remapped = api.put(
        "/api/v1/models/bottle/versions/1/mapping/", {"mapping": {"crack": "chip"}}, format="json"
    )
    nothing_passes = api.put(
        "/api/v1/models/bottle/versions/1/mapping/", {"mapping": {"ok": "chip"}}, format="json"
    )

    assert remapped.status_code == 200
    body = assert_error(nothing_passes, 400, "serves CAP-1", "no defect")
    assert "mapping" in body["errors"]
    assert mapping_of(version) == {"ok": "no defect", "crack": "chip"}


def test_mapping_before_validation_read_the_labels_says_to_wait(api):
    MLModel.objects.create(name="bottle")
    upload(api, labels="ok\ncrack")

    response = api.put(
        "/api/v1/models/bottle/versions/1/mapping/", {"mapping": {"ok": None}}, format="json"
    )

    assert_error(response, 400, "uploaded", "once validation has read them")
    assert not LabelMapping.objects.exists()


# --- Deployments -----------------------------------------------------------------------


@pytest.fixture
def plant_floor():
    line = factories.line(code="L1")
    station = factories.station(code="CAP-1", line_obj=line)
    product = factories.product(sku="YOG-125", lines=[line])
    return station, product


def deploy(api, **fields):
    body = {"station": "CAP-1", "model": "bottle", "version": 1, **fields}
    return api.post("/api/v1/deployments/", body, format="json")


def nothing_deployed() -> bool:
    return (
        not Deployment.objects.exists()
        and not DeploymentHistory.objects.exists()
        and not DefectThreshold.objects.exists()
    )


def test_deploying_activates_the_version_for_the_station(api, engineer, plant_floor):
    station, _ = plant_floor
    factories.version_row(model_name="bottle", labels=("ok", "missing_cap", "crack"))

    response = deploy(
        api,
        confidence_threshold=0.7,
        defect_thresholds={"crack": 0.5},
        always_review=["missing_cap"],
        pass_review_rate=0.02,
        edge_recheck_rate=0.1,
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert response["Location"] == body["url"]
    assert body["station"] == "CAP-1"
    assert body["product"] is None
    assert body["version"] == {"model": "bottle", "number": 1}
    assert body["confidence_threshold"] == 0.7
    assert body["defect_thresholds"] == {"crack": 0.5}
    assert body["always_review"] == ["missing_cap"]
    assert body["pass_review_rate"] == 0.02
    assert body["edge_recheck_rate"] == 0.1
    assert body["is_active"] is True
    assert body["activated_by"] == "qe"

    active = selectors.active_deployment(station=station)
    assert active.pk == body["id"]
    assert active.version.number == 1
    assert api.get(response["Location"]).json()["id"] == body["id"]
    entry = DeploymentHistory.objects.get()
    assert (entry.action, entry.from_deployment, entry.to_deployment_id, entry.by) == (
        "activate",
        None,
        body["id"],
        engineer,
    )


def test_deploying_for_one_product_leaves_the_station_wide_deployment(api, plant_floor):
    station, product = plant_floor
    factories.version_row(model_name="bottle")
    factories.version_row(model_name="bottle")
    deploy(api, version=1)

    response = deploy(api, version=2, product="YOG-125")

    assert response.status_code == 201, response.content
    assert response.json()["product"] == "YOG-125"
    assert selectors.active_deployment(station=station).version.number == 1
    assert selectors.active_deployment(station=station, product=product).version.number == 2


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"station": "NOPE"}, "station", ["no station", "NOPE"]),
        ({"product": "NOPE"}, "product", ["no product", "NOPE"]),
        ({"model": "ghost"}, "model", ["no model", "ghost"]),
        ({"version": 9}, "version", ["no version 9"]),
        ({"confidence_threshold": 1.5}, "confidence_threshold", ["less than or equal to 1"]),
        ({"confidence_threshold": -0.1}, "confidence_threshold", ["greater than or equal to 0"]),
        ({"confidence_threshold": "high"}, "confidence_threshold", ["number"]),
        ({"pass_review_rate": 2}, "pass_review_rate", ["less than or equal to 1"]),
        ({"edge_recheck_rate": -1}, "edge_recheck_rate", ["greater than or equal to 0"]),
        ({"defect_thresholds": {"crack": 1.01}}, "defect_thresholds", ["crack"]),
        ({"defect_thresholds": {"dent": 0.5}}, "defect_thresholds", ["Unknown", "dent"]),
        ({"always_review": ["dent"]}, "always_review", ["Unknown", "dent"]),
        ({"always_review": "crack"}, "always_review", ["list"]),
    ],
)
def test_bad_deployment_is_refused_and_nothing_changes(api, plant_floor, fields, field, words):
    factories.version_row(model_name="bottle")
    factories.product(sku="OTHER", lines=[])

    response = deploy(api, **fields)

    body = assert_error(response, 400, *words)
    assert field in body["errors"]
    assert nothing_deployed()


@pytest.mark.parametrize(
    ("version_fields", "words"),
    [
        ({"status": "invalid", "status_reason": "uses ReadFile"}, ["invalid", "only ready"]),
        ({"status": "uploaded"}, ["uploaded", "only ready"]),
        ({"status": "validating"}, ["validating", "only ready"]),
        ({"mapping": {"ok": None, "missing_cap": "missing_cap"}}, ["Map every label", "crack"]),
        ({"mapping": {"ok": "ok", "missing_cap": "cap", "crack": "crack"}}, ["no defect"]),
    ],
    ids=["invalid", "uploaded", "validating", "unmapped-label", "nothing-can-pass"],
)
def test_only_ready_fully_mapped_versions_can_be_deployed(api, plant_floor, version_fields, words):
    factories.version_row(model_name="bottle", **version_fields)

    response = deploy(api)

    assert_error(response, 400, *words)
    assert nothing_deployed()


def test_product_not_made_on_the_station_line_is_refused(api, plant_floor):
    factories.version_row(model_name="bottle")
    factories.product(sku="JAR-1", lines=[factories.line(code="L2")])

    response = deploy(api, product="JAR-1")

    assert_error(response, 400, "JAR-1 does not run on line L1")
    assert nothing_deployed()


def test_deployments_list_shows_what_serves_now_and_the_history(api, plant_floor):
    factories.version_row(model_name="bottle")
    factories.version_row(model_name="bottle")
    other = factories.station(code="CAP-2")
    deploy(api, version=1)
    deploy(api, version=2)
    factories.deployment(station_obj=other)

    body = api.get("/api/v1/deployments/?station=CAP-1").json()

    assert [(d["station"], d["version"]["number"]) for d in body["active"]] == [("CAP-1", 2)]
    assert [
        (
            h["action"],
            h["from_deployment"] and h["from_deployment"]["version"]["number"],
            h["to_deployment"]["version"]["number"],
            h["by"],
        )
        for h in body["history"]
    ] == [("activate", 1, 2, "qe"), ("activate", None, 1, "qe")]
    everything = api.get("/api/v1/deployments/").json()
    assert {d["station"] for d in everything["active"]} == {"CAP-1", "CAP-2"}
    assert len(api.get("/api/v1/deployments/?history_limit=1").json()["history"]) == 1


def test_deployments_list_of_an_unknown_station_is_refused(api):
    assert_error(api.get("/api/v1/deployments/?station=NOPE"), 400, "NOPE")


def test_rollback_walks_back_one_activation_at_a_time(api, plant_floor):
    station, _ = plant_floor
    for _ in range(3):
        factories.version_row(model_name="bottle")
    for number in (1, 2, 3):
        assert deploy(api, version=number).status_code == 201

    served = []
    for _ in range(2):
        response = api.post("/api/v1/deployments/rollback/", {"station": "CAP-1"}, format="json")
        assert response.status_code == 200, response.content
        served.append(response.json()["version"]["number"])
        assert selectors.active_deployment(station=station).version.number == served[-1]
    last = api.post("/api/v1/deployments/rollback/", {"station": "CAP-1"}, format="json")

    assert served == [2, 1]
    assert_error(last, 400, "first deployment", "nothing to roll back to")
    assert selectors.active_deployment(station=station).version.number == 1
    rollbacks = DeploymentHistory.objects.filter(action="rollback").order_by("id")
    assert [
        (h.from_deployment.version.number, h.to_deployment.version.number) for h in rollbacks
    ] == [
        (3, 2),
        (2, 1),
    ]


def test_rollback_of_a_station_with_nothing_deployed_is_refused(api, plant_floor):
    response = api.post("/api/v1/deployments/rollback/", {"station": "CAP-1"}, format="json")

    assert_error(response, 400, "Nothing is deployed to CAP-1")
    assert not DeploymentHistory.objects.exists()


def test_rollback_of_an_unknown_station_is_refused(api):
    response = api.post("/api/v1/deployments/rollback/", {"station": "NOPE"}, format="json")

    assert_error(response, 400, "NOPE")


# --- Who may call it ---------------------------------------------------------------

ENDPOINTS = [
    ("get", "/api/v1/models/", None),
    ("post", "/api/v1/models/", {"name": "jar"}),
    ("get", "/api/v1/models/bottle/", None),
    ("get", "/api/v1/models/bottle/versions/", None),
    ("post", "/api/v1/models/bottle/versions/", {}),
    ("get", "/api/v1/models/bottle/versions/1/", None),
    ("put", "/api/v1/models/bottle/versions/1/mapping/", {"mapping": {"crack": None}}),
    ("get", "/api/v1/deployments/", None),
    ("post", "/api/v1/deployments/", {"station": "CAP-1", "model": "bottle", "version": 1}),
    ("post", "/api/v1/deployments/rollback/", {"station": "CAP-1"}),
]


@pytest.fixture
def registry_with_a_deployment():
    station = factories.station(code="CAP-1")
    factories.deployment(station_obj=station, version=factories.version_row(model_name="bottle"))
    return station


def call(client: APIClient, method: str, url: str, data):
    return getattr(client, method)(url, data, format="json")


def registry_state() -> tuple:
    return (
        list(MLModel.objects.values_list("name", flat=True)),
        list(ModelVersion.objects.values_list("pk", flat=True)),
        list(Deployment.objects.values_list("pk", "is_active")),
        DeploymentHistory.objects.count(),
        mapping_of(ModelVersion.objects.get()),
    )


@pytest.mark.parametrize(("method", "url", "data"), ENDPOINTS)
def test_no_token_is_a_401(registry_with_a_deployment, method, url, data):
    before = registry_state()

    response = call(APIClient(), method, url, data)

    assert_error(response, 401, "credentials")
    assert response["WWW-Authenticate"] == "Token"
    assert registry_state() == before


@pytest.mark.parametrize(("method", "url", "data"), ENDPOINTS)
def test_a_wrong_token_is_a_401(registry_with_a_deployment, method, url, data):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")

    assert_error(call(client, method, url, data), 401, "Invalid token")


@pytest.mark.parametrize("role", ["inspector", "viewer"])
@pytest.mark.parametrize(("method", "url", "data"), ENDPOINTS)
def test_inspectors_and_viewers_are_refused(registry_with_a_deployment, role, method, url, data):
    before = registry_state()
    client = client_for(getattr(factories, role)())

    response = call(client, method, url, data)

    assert_error(response, 403, "Only quality engineers", "models_registry.")
    assert registry_state() == before


@pytest.mark.parametrize(("method", "url", "data"), ENDPOINTS)
def test_station_device_tokens_are_refused(registry_with_a_deployment, method, url, data):
    before = registry_state()
    _, token = factories.station_with_token(code="CAM-9")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    response = call(client, method, url, data)

    assert_error(response, 403, "Only quality engineers")
    assert registry_state() == before


def test_permission_not_the_group_name_decides(registry_with_a_deployment):
    from django.contrib.auth.models import Permission

    reader = factories.user(username="auditor")
    reader.user_permissions.add(Permission.objects.get(codename="view_modelversion"))
    client = client_for(reader)

    assert client.get("/api/v1/models/bottle/versions/1/").status_code == 200
    assert_error(
        client.post("/api/v1/models/bottle/versions/", {}, format="multipart"),
        403,
        "models_registry.add_modelversion",
    )


def test_an_unsupported_method_is_a_405_not_a_403(api):
    assert_error(api.delete("/api/v1/models/"), 405, "DELETE")


def test_options_on_a_write_only_endpoint_describes_it_to_an_engineer(api):
    response = api.options("/api/v1/deployments/rollback/")

    assert response.status_code == 200
    assert "POST" in response["Allow"]
