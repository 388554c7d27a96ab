"""The registry's screens in admin: validation step by step, refusals at upload, labels fixed
without a new upload, deploying from a station's settings, rolling back from a page, and
numbers written for people."""

import io
import tarfile
import zipfile

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tasks_db.models import DBTaskResult
from rest_framework.test import APIClient

from common.models import Job
from models_registry.models import Deployment, MLModel, ModelVersion
from models_registry.services import deployment_activate, model_create, version_upload
from models_registry.validation import validate_version_now
from models_registry.validation.jobs import validation_run_now
from tests import factories
from tests.conftest import stored_files
from tests.registry import artifact_bytes, cached_sandbox
from tests.tf_models import DEFAULT_LABELS

pytestmark = pytest.mark.django_db

UPLOAD_URL = "/admin/models_registry/modelversion/add/"
VERSIONS_URL = "/admin/models_registry/modelversion/"
DEPLOYMENTS_URL = "/admin/models_registry/deployment/"
ACTIVATE_URL = "/admin/models_registry/deployment/add/"
LABELS = list(DEFAULT_LABELS)


@pytest.fixture(autouse=True)
def work_dir(settings, tmp_path):
    work = tmp_path / "validation-work"
    work.mkdir()
    settings.LINESIGHT = {**settings.LINESIGHT, "SANDBOX_WORK_DIR": str(work)}
    return work


@pytest.fixture
def engineer():
    return factories.engineer(username="qe")


@pytest.fixture
def browser(client, engineer):
    client.force_login(engineer)
    return client


def version_url(version) -> str:
    return f"{VERSIONS_URL}{version.pk}/change/"


def page_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def queued_validations() -> list:
    return list(DBTaskResult.objects.filter(task_path="models_registry.tasks.validate_version"))


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def targz_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# --- Refused at upload, not minutes later -------------------------------------------------

NOT_A_MODEL = [
    (
        "weights.zip",
        zip_of({"model/weights.h5": b"\0" * 64, "README.md": b"hi"}),
        "no saved_model.pb",
    ),
    ("model.tar.gz", targz_of({"export/variables/variables.index": b"\0"}), "no saved_model.pb"),
    ("deep.zip", zip_of({"a/b/saved_model.pb": b"\x08\x01"}), "saved_model.pb is at 'a/b/"),
    ("model.keras", b"\x89HDF\r\n\x1a\n" + b"\0" * 64, "not a readable zip"),
    ("model.keras", zip_of({"model.weights.h5": b"\0"}), "no config.json"),
]
NOT_A_MODEL_IDS = ["zip-without-pb", "targz-without-pb", "pb-too-deep", "h5-as-keras", "no-config"]


@pytest.mark.parametrize(("filename", "data", "words"), NOT_A_MODEL, ids=NOT_A_MODEL_IDS)
def test_upload_form_refuses_an_artifact_that_holds_no_model(
    browser, _media_root, django_capture_on_commit_callbacks, filename, data, words
):
    model = MLModel.objects.create(name="bottle")

    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(
            UPLOAD_URL,
            {
                "model": model.pk,
                "artifact": SimpleUploadedFile(filename, data),
                "labels": "ok\ncrack",
                "resize_interpolation": "bilinear",
            },
        )

    assert response.status_code == 200
    assert words in " ".join(response.context["form"].errors["artifact"])
    assert not ModelVersion.objects.exists()
    assert stored_files(_media_root) == []
    assert queued_validations() == []


@pytest.mark.parametrize(("filename", "data", "words"), NOT_A_MODEL, ids=NOT_A_MODEL_IDS)
def test_upload_api_refuses_an_artifact_that_holds_no_model(
    engineer, _media_root, filename, data, words
):
    MLModel.objects.create(name="bottle")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(engineer)}")

    response = api.post(
        "/api/v1/models/bottle/versions/",
        {"artifact": SimpleUploadedFile(filename, data), "labels": "ok\ncrack"},
        format="multipart",
    )

    assert response.status_code == 400, response.content
    assert words in response.json()["detail"]
    assert not ModelVersion.objects.exists()
    assert stored_files(_media_root) == []


# --- Validation, step by step -------------------------------------------------------------


@pytest.mark.slow
def test_validation_records_each_step_with_its_time_for_the_version_page(browser):
    version = version_upload(
        model=model_create(name="bottle"),
        artifact=ContentFile(artifact_bytes(), name="bottle.zip"),
        labels=LABELS,
    )

    validation_run_now(version.pk)  # what the queued task runs

    state = browser.get(f"{VERSIONS_URL}{version.pk}/validation/").json()
    assert (state["status"], state["running"]) == ("ready", False)
    steps = {step["key"]: step for step in state["steps"]}
    assert list(steps) == [
        "unpack",
        "import_tensorflow",
        "check",
        "load",
        "probe",
        "tflite",
        "parity",
        "store",
    ]
    assert all(step["state"] == "done" for step in steps.values()), steps
    assert all(step["time"].endswith(" s") for step in steps.values())
    job = Job.objects.get(kind="validation")
    assert (job.state, job.progress) == ("done", 1.0)

    html = browser.get(version_url(version)).content.decode()
    assert "Warm-up inference" in html and "TFLite parity check" in html
    assert f"{steps['load']['time']}</span>" in html


@pytest.mark.slow
def test_failed_validation_shows_the_step_that_failed_and_why(browser):
    version = version_upload(
        model=model_create(name="bottle"),
        artifact=ContentFile(artifact_bytes(), name="bottle.zip"),
        labels=["ok", "crack"],  # the model has three outputs
    )

    validation_run_now(version.pk)

    state = browser.get(f"{VERSIONS_URL}{version.pk}/validation/").json()
    assert state["status"] == "invalid"
    assert "returns 3 scores per frame but the version has 2 labels" in state["reason"]
    states = {step["key"]: step["state"] for step in state["steps"]}
    assert states["check"] == "failed"  # the signature's output width
    assert states["unpack"] == states["import_tensorflow"] == "done"
    assert states["load"] == states["store"] == "skipped"
    assert Job.objects.get(kind="validation").state == "failed"


def test_a_queued_version_shows_its_steps_waiting(browser):
    version = factories.version_row(model_name="bottle", status="uploaded")

    state = browser.get(f"{VERSIONS_URL}{version.pk}/validation/").json()

    assert state["running"] is True
    assert "waiting for the validation worker" in state["message"]
    assert {step["state"] for step in state["steps"]} == {"pending"}


def test_versions_list_shows_why_a_version_is_invalid(browser):
    factories.version_row(
        model_name="bottle",
        status="invalid",
        status_reason="The model has 3 outputs but 2 labels were given.",
    )

    html = browser.get(VERSIONS_URL).content.decode()

    assert "The model has 3 outputs but 2 labels were given." in html


# --- Labels fixed without a new upload ----------------------------------------------------


@pytest.mark.slow
def test_wrong_labels_are_replaced_and_validated_again_without_a_new_upload(
    browser, django_capture_on_commit_callbacks
):
    version = version_upload(
        model=model_create(name="bottle"),
        artifact=ContentFile(artifact_bytes(), name="bottle.zip"),
        labels=["ok", "crack"],
    )
    version = validate_version_now(version.pk, sandbox=cached_sandbox)
    assert version.status == "invalid"
    artifact, sha256 = version.artifact.name, version.sha256

    page = browser.get(f"{VERSIONS_URL}{version.pk}/labels/")
    assert page.status_code == 200
    assert version.status_reason in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(
            f"{VERSIONS_URL}{version.pk}/labels/", {"labels": "\r\n".join(LABELS)}
        )

    assert response.status_code == 302
    assert response["Location"] == version_url(version)
    version.refresh_from_db()
    assert (version.status, version.labels) == ("uploaded", LABELS)
    assert [t.args_kwargs["args"] for t in queued_validations()] == [[version.pk]]
    version = validate_version_now(version.pk, sandbox=cached_sandbox)  # as the worker does
    assert version.status == "ready", version.status_reason
    assert (version.artifact.name, version.sha256) == (artifact, sha256)
    assert ModelVersion.objects.count() == 1
    assert list(version.mappings.values_list("label", flat=True)) == LABELS


def test_labels_of_a_serving_version_are_not_replaced(browser):
    version = factories.version_row(model_name="bottle")
    factories.deployment(station_obj=factories.station(code="CAP-1"), version=version)

    response = browser.post(f"{VERSIONS_URL}{version.pk}/labels/", {"labels": "a\nb\nc"})

    assert response.status_code == 200
    assert "serving CAP-1" in response.content.decode()
    version.refresh_from_db()
    assert (version.labels, version.status) == (["ok", "missing_cap", "crack"], "ready")
    assert queued_validations() == []


# --- Deploying ----------------------------------------------------------------------------


def test_deploy_action_on_an_invalid_version_says_it_is_not_ready_and_why(browser):
    version = factories.version_row(
        model_name="bottle", status="invalid", status_reason="The model uses ReadFile."
    )

    response = browser.post(
        VERSIONS_URL,
        {"action": "deploy_selected", "_selected_action": [version.pk]},
        follow=True,
    )

    said = " ".join(page_messages(response))
    assert f"{version} is invalid" in said and "The model uses ReadFile." in said
    assert response.request["PATH_INFO"] == VERSIONS_URL  # not a form with the version blank


def test_deploy_form_opened_for_an_invalid_version_says_why_it_is_not_offered(browser):
    version = factories.version_row(
        model_name="bottle", status="invalid", status_reason="The model uses ReadFile."
    )

    html = browser.get(f"{ACTIVATE_URL}?version={version.pk}").content.decode()

    assert f"{version} is invalid, so it cannot be deployed: The model uses ReadFile." in html


def test_deploy_form_starts_from_the_stations_current_settings(browser):
    station = factories.station(code="CAP-1")
    crack = factories.defect_type(code="crack")
    scratch = factories.defect_type(code="scratch")
    old = factories.version_row(model_name="bottle")
    deployment_activate(
        station=station,
        version=old,
        confidence_threshold=0.9,
        pass_review_rate=0.02,
        edge_recheck_rate=0.1,
        always_review=[scratch],
        defect_thresholds={crack: 0.7},
    )
    new = factories.version_row(model_name="bottle")

    page = browser.get(f"{ACTIVATE_URL}?station={station.pk}&version={new.pk}")
    form, thresholds = page.context["form"], page.context["thresholds"]
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data.update(
        {f"thresholds-{key}": value for key, value in thresholds.management_form.initial.items()}
    )
    for row in thresholds.forms:
        for name in row.fields:
            if row[name].value() is not None:
                data[row.add_prefix(name)] = row[name].value()
    response = browser.post(ACTIVATE_URL, data)  # the form as the engineer found it

    assert response.status_code == 302, response.context["form"].errors
    active = Deployment.objects.get(station=station, is_active=True)
    assert active.version == new
    assert (active.confidence_threshold, active.pass_review_rate, active.edge_recheck_rate) == (
        0.9,
        0.02,
        0.1,
    )
    assert list(active.always_review.all()) == [scratch]
    assert {(t.defect_type, t.threshold) for t in active.defect_thresholds.all()} == {(crack, 0.7)}
    assert "audit sample of passes 2 %" in page.content.decode()


def test_roll_back_button_on_the_deployment_page_asks_then_rolls_back(browser):
    station = factories.station(code="CAP-1")
    v1 = factories.version_row(model_name="bottle")
    v2 = factories.version_row(model_name="bottle")
    factories.deployment(station_obj=station, version=v1)
    current = factories.deployment(station_obj=station, version=v2)

    page = browser.get(f"{DEPLOYMENTS_URL}{current.pk}/change/")
    rollback_url = f"{DEPLOYMENTS_URL}{current.pk}/rollback/"
    assert rollback_url in page.content.decode()
    asked = browser.get(rollback_url).content.decode()
    assert f"{v2} →" in asked and str(v1) in asked
    response = browser.post(rollback_url, follow=True)

    assert Deployment.objects.get(station=station, is_active=True).version == v1
    assert f"CAP-1 rolled back to {v1}." in page_messages(response)


def test_roll_back_button_on_the_station_page_rolls_the_station_back(browser):
    station = factories.station(code="CAP-1")
    v1 = factories.version_row(model_name="bottle")
    v2 = factories.version_row(model_name="bottle")
    factories.deployment(station_obj=station, version=v1)
    factories.deployment(station_obj=station, version=v2)

    page = browser.get(f"/admin/masterdata/station/{station.pk}/change/").content.decode()
    rollback_url = f"{DEPLOYMENTS_URL}station/{station.pk}/rollback/"
    assert rollback_url in page
    response = browser.post(rollback_url)

    assert response["Location"] == f"/admin/masterdata/station/{station.pk}/change/"
    assert Deployment.objects.get(station=station, is_active=True).version == v1


def test_roll_back_is_not_offered_to_whom_may_not_deploy(client):
    station = factories.station(code="CAP-1")
    factories.deployment(station_obj=station, version=factories.version_row(model_name="bottle"))
    viewer = factories.user(username="auditor", is_staff=True)
    viewer.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_station", "view_deployment"])
    )
    client.force_login(viewer)

    page = client.get(f"/admin/masterdata/station/{station.pk}/change/").content.decode()
    response = client.post(f"{DEPLOYMENTS_URL}station/{station.pk}/rollback/")

    assert "rollback" not in page
    assert response.status_code == 403


# --- Numbers and dates for people ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "argument", "shown"),
    [
        ("percent", 0.9734, None, "97.3 %"),
        ("percent", 0.8, None, "80 %"),
        ("percent", 0.5, 0, "50 %"),
        ("percent", None, None, "—"),
        ("ms", 0.6781559999922138, None, "0.68 ms"),
        ("ms", 0.0042, None, "0.0042 ms"),
        ("ms", 4.567, None, "4.57 ms"),
        ("ms", 14.234, None, "14.2 ms"),
        ("ms", 1234.5, None, "1,234 ms"),
        ("seconds", 12.345, None, "12.3 s"),
        ("seconds", 125, None, "2 min 05 s"),
        ("bytesize", 16_234_567, None, "15.5 MB"),
        ("bytesize", 512, None, "512 bytes"),
        ("sig", 3.0994415283203125e-07, None, "3.1e-07"),
        ("sig", "not a number", None, "—"),
    ],
)
def test_format_filters_write_numbers_one_way(name, value, argument, shown):
    from common.templatetags import linesight_format

    function = getattr(linesight_format, name)
    assert (function(value) if argument is None else function(value, argument)) == shown


def test_version_page_writes_latency_diff_and_size_for_people(browser):
    version = factories.version_row(
        model_name="bottle",
        warmup_latency_ms=0.6781559999922138,
        tflite_latency_ms=0.2345678,
        tflite_max_abs_diff=3.0994415283203125e-07,
        validation_seconds=12.3456,
    )
    ModelVersion.objects.filter(pk=version.pk).update(size_bytes=16_234_567)
    factories.deployment(station_obj=factories.station(code="CAP-1"), version=version)

    html = browser.get(version_url(version)).content.decode()

    assert "0.6781559999922138" not in html and "3.0994415283203125e-07" not in html
    assert "0.68 ms" in html and "0.23 ms" in html and "3.1e-07" in html
    assert "15.5 MB" in html and "12.3 s" in html
    summary = html.split('id="version-summary"')[1].split("</div>\n</dl>")[0]
    assert "TFLite" in summary and "0.23 ms (TFLite)" in summary and "CAP-1" in summary


def test_inspection_page_writes_confidence_and_time_for_people(client):
    from inspection.models import Inspection

    deployment = factories.deployment(
        station_obj=factories.station(code="CAP-1"),
        version=factories.version_row(model_name="bottle"),
    )
    frame = factories.inspection_row(deployment_obj=deployment, confidence=0.97341)
    Inspection.objects.filter(pk=frame.pk).update(latency_ms=14.23456)
    client.force_login(factories.inspector())

    html = client.get(f"/dashboard/inspections/{frame.pk}/").content.decode()

    assert "<dd>97.3 %</dd>" in html
    assert "<dd>14.2 ms</dd>" in html
    assert "confidence ≥ 80 %" in html


def test_model_page_shows_its_versions_as_a_timeline_of_where_they_served(browser):
    station = factories.station(code="CAP-1")
    v1 = factories.version_row(model_name="bottle")
    v2 = factories.version_row(model_name="bottle")
    first = factories.deployment(station_obj=station, version=v1)
    factories.deployment(station_obj=station, version=v2)
    first.refresh_from_db()

    html = browser.get(f"/admin/models_registry/mlmodel/{v1.model_id}/change/").content.decode()

    timeline = html.split('id="version-timeline"')[1]
    assert timeline.index(str(v2)) < timeline.index(str(v1))  # newest first
    newest, oldest = timeline.split(f">{v1}</a>")
    assert "Serves now: <strong>CAP-1</strong>" in newest and "since" in newest
    assert "→" in oldest and "Serves now" not in oldest  # served CAP-1 until v2 replaced it


def test_a_validation_job_run_again_leaves_a_serving_version_alone():
    from common.jobs import job_run

    version = factories.version_row(model_name="bottle")
    factories.deployment(station_obj=factories.station(code="CAP-1"), version=version)
    job = Job.objects.create(
        kind="validation",
        queue="validation",
        target_type=ContentType.objects.get_for_model(ModelVersion),
        target_id=str(version.pk),
    )

    assert job_run(str(job.pk)) == "failed"

    job.refresh_from_db()
    assert "serves a station now" in job.error
    version.refresh_from_db()
    assert version.status == "ready"
