"""The registry in Django admin, as a quality engineer clicks through it."""

import hashlib
import io
import zipfile

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tasks_db.models import DBTaskResult

from models_registry import selectors
from models_registry.models import (
    DefectThreshold,
    Deployment,
    DeploymentHistory,
    MLModel,
    ModelVersion,
)
from tests import factories
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db

UPLOAD_URL = "/admin/models_registry/modelversion/add/"
ACTIVATE_URL = "/admin/models_registry/deployment/add/"
VERSIONS_URL = "/admin/models_registry/modelversion/"
DEPLOYMENTS_URL = "/admin/models_registry/deployment/"


@pytest.fixture
def engineer():
    return factories.engineer(username="qe")


@pytest.fixture
def browser(client, engineer):
    client.force_login(engineer)
    return client


def version_url(version) -> str:
    return f"{VERSIONS_URL}{version.pk}/change/"


def deployment_url(deployment) -> str:
    return f"{DEPLOYMENTS_URL}{deployment.pk}/change/"


def page_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def change_form_data(response) -> dict:
    """What the browser would post back from a change page, inlines included, unchanged."""
    data = {}
    form = response.context["adminform"].form
    for name in form.fields:
        value = form[name].value()
        if value is not None:
            data[name] = value
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for name in formset.management_form.fields:
            data[f"{formset.prefix}-{name}"] = formset.management_form[name].value()
        for row in formset.forms:
            for name in row.fields:
                value = row[name].value()
                if value is not None:
                    data[row.add_prefix(name)] = value
    return data


def mapping_field(response, label: str) -> str:
    formset = response.context["inline_admin_formsets"][0].formset
    row = next(f for f in formset.forms if f.instance.label == label)
    return row.add_prefix("meaning")


def savedmodel_shaped_zip() -> bytes:
    """A small zip shaped like an exported SavedModel (the upload checks its listing only)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("bottle/saved_model.pb", b"\x08\x01" * 64)
        archive.writestr("bottle/variables/variables.index", b"\x00" * 32)
    return buffer.getvalue()


def queued_validations() -> list:
    return list(DBTaskResult.objects.filter(task_path="models_registry.tasks.validate_version"))


# --- Models ---------------------------------------------------------------------------


def test_model_page_lists_its_versions_with_status_and_where_they_serve(browser):
    v1 = factories.version_row(model_name="bottle", status="invalid", status_reason="uses ReadFile")
    v2 = factories.version_row(model_name="bottle")
    factories.deployment(station_obj=factories.station(code="CAP-1"), version=v2)

    response = browser.get(f"/admin/models_registry/mlmodel/{v1.model_id}/change/")

    html = response.content.decode()
    assert response.status_code == 200
    assert version_url(v1) in html and version_url(v2) in html
    assert "uses ReadFile" in html
    assert "CAP-1" in html
    assert f"{UPLOAD_URL}?model={v1.model_id}" in html


def test_engineer_adds_a_model_in_admin(browser):
    response = browser.post(
        "/admin/models_registry/mlmodel/add/", {"name": "bottle", "description": "caps"}
    )

    assert response.status_code == 302
    assert MLModel.objects.get().description == "caps"


# --- Upload ---------------------------------------------------------------------------------


def test_upload_form_stores_the_version_and_queues_its_validation(
    browser, engineer, _media_root, django_capture_on_commit_callbacks
):
    model = MLModel.objects.create(name="bottle")
    content = savedmodel_shaped_zip()

    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(
            UPLOAD_URL,
            {
                "model": model.pk,
                "artifact": SimpleUploadedFile("bottle.zip", content),
                "labels": "ok\r\nmissing_cap\r\n\r\ncrack",
                "notes": "first try",
                "resize_interpolation": "bilinear",
            },
        )

    version = ModelVersion.objects.get()
    assert response.status_code == 302
    assert response["Location"] == version_url(version)
    assert (version.number, version.status, version.uploaded_by) == (1, "uploaded", engineer)
    assert version.labels == ["ok", "missing_cap", "crack"]
    assert version.sha256 == hashlib.sha256(content).hexdigest()
    assert stored_files(_media_root) == [version.artifact.name]
    assert [t.args_kwargs["args"] for t in queued_validations()] == [[version.pk]]

    page = browser.get(response["Location"])
    assert "Validation is queued" in " ".join(page_messages(page))
    assert "Uploaded" in page.content.decode()


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        (
            {"artifact": SimpleUploadedFile("notes.pdf", b"%PDF")},
            "artifact",
            "not a model artifact",
        ),
        ({"artifact": SimpleUploadedFile("bottle.zip", b"")}, "artifact", "empty"),
        ({"artifact": None}, "artifact", "required"),
        ({"labels": "ok\nok"}, "labels", "repeated: ok"),
        ({"model": 999}, "model", "valid choice"),
    ],
    ids=["wrong-type", "empty", "missing", "duplicate-labels", "unknown-model"],
)
def test_bad_upload_shows_the_error_and_stores_nothing(
    browser, _media_root, django_capture_on_commit_callbacks, fields, field, words
):
    model = MLModel.objects.create(name="bottle")
    data = {
        "model": model.pk,
        "artifact": SimpleUploadedFile("bottle.zip", savedmodel_shaped_zip()),
        "labels": "",
        "notes": "",
        "resize_interpolation": "bilinear",
        **fields,
    }
    data = {key: value for key, value in data.items() if value is not None}

    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(UPLOAD_URL, data)

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert words in " ".join(errors[field])
    assert "nothing was saved" in response.content.decode()
    assert not ModelVersion.objects.exists()
    assert stored_files(_media_root) == []
    assert queued_validations() == []


def test_upload_page_preselects_the_model_it_came_from(browser):
    model = MLModel.objects.create(name="bottle")

    response = browser.get(f"{UPLOAD_URL}?model={model.pk}")

    assert response.status_code == 200
    assert response.context["form"]["model"].value() == str(model.pk)


# --- A version's page -------------------------------------------------------------------------


def test_version_page_shows_signature_labels_runtime_and_latency(browser):
    version = factories.version_row(
        model_name="bottle",
        signature_name="serving_default",
        input_name="keras_tensor",
        output_name="output_0",
        serving_runtime_reason="TFLite matched the SavedModel (max diff 3e-07).",
        tflite_max_abs_diff=3e-7,
        warmup_latency_ms=6.25,
        tflite_latency_ms=1.5,
        validation_seconds=9.5,
        uploaded_by=factories.engineer(username="alice"),
    )

    html = browser.get(version_url(version)).content.decode()

    for shown in [
        "serving_default",
        "keras_tensor",
        "32 x 32 x 3",
        "float32",
        "ok, missing_cap, crack",
        "TFLite (LiteRT)",
        "TFLite matched the SavedModel (max diff 3e-07).",
        "6.25",
        "9.5",
        "alice",
        version.sha256,
        "Ready",
        "Deploy to a station",
        "Validate again",
    ]:
        assert shown in html, shown


def test_invalid_version_page_shows_why_and_offers_no_deploy(browser):
    version = factories.version_row(
        model_name="bottle", status="invalid", status_reason="Lambda layers are not allowed."
    )

    html = browser.get(version_url(version)).content.decode()

    assert "Invalid — Lambda layers are not allowed." in html
    assert "Deploy to a station" not in html


def test_engineer_maps_labels_in_the_inline(browser):
    version = factories.version_row(model_name="bottle", labels=("good", "cap", "chip"), mapping={})
    factories.defect_type(code="missing_cap")
    factories.defect_type(code="chipped")
    page = browser.get(version_url(version))
    data = change_form_data(page)
    data[mapping_field(page, "good")] = "__no_defect__"
    data[mapping_field(page, "cap")] = "missing_cap"
    data[mapping_field(page, "chip")] = "chipped"

    response = browser.post(version_url(version), data)

    assert response.status_code == 302, response.context and response.context.get("errors")
    meanings = {m.label: m.meaning for m in version.mappings.all()}
    assert meanings == {"good": "no defect", "cap": "missing_cap", "chip": "chipped"}


def test_unmapped_labels_can_stay_unmapped_while_others_are_mapped(browser):
    version = factories.version_row(model_name="bottle", labels=("good", "cap"), mapping={})
    page = browser.get(version_url(version))
    data = change_form_data(page)
    data[mapping_field(page, "good")] = "__no_defect__"

    assert browser.post(version_url(version), data).status_code == 302
    assert {m.label: m.meaning for m in version.mappings.all()} == {
        "good": "no defect",
        "cap": "unmapped",
    }


def test_unknown_defect_code_in_the_inline_is_refused(browser):
    version = factories.version_row(model_name="bottle", labels=("good", "cap"), mapping={})
    page = browser.get(version_url(version))
    data = change_form_data(page)
    data[mapping_field(page, "cap")] = "no_such_code"

    response = browser.post(version_url(version), data)

    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert {m.meaning for m in version.mappings.all()} == {"unmapped"}


def test_mapping_that_leaves_a_deployed_version_nothing_to_pass_is_refused(browser):
    version = factories.version_row(model_name="bottle", labels=("ok", "crack"))
    factories.deployment(station_obj=factories.station(code="CAP-1"), version=version)
    page = browser.get(version_url(version))
    data = change_form_data(page)
    data[mapping_field(page, "ok")] = "crack"

    response = browser.post(version_url(version), data)

    assert response.status_code == 200
    assert "keep at least one label meaning" in response.content.decode()
    assert version.mappings.get(label="ok").no_defect


def test_remapping_a_deployed_version_warns_that_it_applies_now(browser):
    version = factories.version_row(model_name="bottle", labels=("ok", "crack"))
    factories.deployment(station_obj=factories.station(code="CAP-1"), version=version)
    factories.defect_type(code="chip")
    page = browser.get(version_url(version))
    data = change_form_data(page)
    data[mapping_field(page, "crack")] = "chip"

    response = browser.post(version_url(version), data, follow=True)

    assert "serves CAP-1: the new label mapping judges the next frames" in " ".join(
        page_messages(response)
    )
    assert version.mappings.get(label="crack").defect_type.code == "chip"
    version.refresh_from_db()
    assert version.mapping_revision == 1


def test_engineer_changes_preprocessing_and_notes(browser):
    version = factories.version_row(model_name="bottle")
    data = change_form_data(browser.get(version_url(version)))
    data.update(resize_mode="letterbox", value_scale="-1_1", color_mode="grayscale", notes="n")

    response = browser.post(version_url(version), data)

    assert response.status_code == 302
    version.refresh_from_db()
    assert (version.resize_mode, version.value_scale, version.color_mode, version.notes) == (
        "letterbox",
        "-1_1",
        "grayscale",
        "n",
    )


def test_preprocessing_of_a_deployed_version_is_refused_with_where_it_serves(browser):
    version = factories.version_row(model_name="bottle")
    factories.deployment(station_obj=factories.station(code="CAP-1"), version=version)
    data = change_form_data(browser.get(version_url(version)))
    data["resize_mode"] = "center_crop"
    data["notes"] = "tried"

    response = browser.post(version_url(version), data)

    assert response.status_code == 200  # the form again, with the reason at the field
    assert "serves CAP-1; deploy another version there before changing how it" in (
        response.content.decode()
    )
    version.refresh_from_db()
    assert (version.resize_mode, version.notes) == ("stretch", "")


def test_validate_button_queues_a_validation(browser, django_capture_on_commit_callbacks):
    version = factories.version_row(model_name="bottle", status="invalid", status_reason="timeout")

    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(f"{VERSIONS_URL}{version.pk}/validate/", follow=True)

    assert "Validation of bottle v1 is queued." in page_messages(response)
    version.refresh_from_db()
    assert version.status == "uploaded"
    assert len(queued_validations()) == 1
    assert browser.get(f"{VERSIONS_URL}{version.pk}/validate/").status_code == 405


def test_validate_action_refuses_a_deployed_version_and_queues_the_rest(
    browser, django_capture_on_commit_callbacks
):
    deployed = factories.version_row(model_name="bottle")
    idle = factories.version_row(model_name="bottle", status="invalid")
    factories.deployment(station_obj=factories.station(code="CAP-1"), version=deployed)

    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(
            VERSIONS_URL,
            {"action": "validate_selected", "_selected_action": [deployed.pk, idle.pk]},
            follow=True,
        )

    notes = " ".join(page_messages(response))
    assert "bottle v1 is serving CAP-1" in notes
    assert "Validation queued for bottle v2" in notes
    assert [t.args_kwargs["args"] for t in queued_validations()] == [[idle.pk]]
    deployed.refresh_from_db()
    assert deployed.status == "ready"


def test_deploy_action_opens_the_activation_form_for_that_version(browser):
    version = factories.version_row(model_name="bottle")

    response = browser.post(
        VERSIONS_URL, {"action": "deploy_selected", "_selected_action": [version.pk]}
    )

    assert response.status_code == 302
    assert response["Location"] == f"{ACTIVATE_URL}?version={version.pk}"
    form = browser.get(response["Location"]).context["form"]
    assert form["version"].value() == str(version.pk)


def test_versions_cannot_be_deleted_in_admin(browser):
    version = factories.version_row(model_name="bottle")

    assert browser.post(f"{VERSIONS_URL}{version.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ModelVersion.objects.filter(pk=version.pk).exists()


# --- Activation ------------------------------------------------------------------------------


def activation_data(*, station, version, **fields) -> dict:
    data = {
        "station": station.pk,
        "product": "",
        "version": version.pk,
        "confidence_threshold": "0.8",
        "pass_review_rate": "0",
        "edge_recheck_rate": "0",
        "thresholds-TOTAL_FORMS": "3",
        "thresholds-INITIAL_FORMS": "0",
        "thresholds-MIN_NUM_FORMS": "0",
        "thresholds-MAX_NUM_FORMS": "1000",
    }
    data.update(fields)
    return data


def nothing_deployed() -> bool:
    return not (
        Deployment.objects.exists()
        or DeploymentHistory.objects.exists()
        or DefectThreshold.objects.exists()
    )


def test_activation_form_deploys_with_thresholds_and_records_who(browser, engineer):
    station = factories.station(code="CAP-1")
    version = factories.version_row(model_name="bottle")
    crack = version.mappings.get(label="crack").defect_type
    cap = version.mappings.get(label="missing_cap").defect_type

    response = browser.post(
        ACTIVATE_URL,
        activation_data(
            station=station,
            version=version,
            confidence_threshold="0.75",
            always_review=[cap.pk],
            pass_review_rate="0.05",
            **{"thresholds-0-defect_type": crack.pk, "thresholds-0-threshold": "0.6"},
        ),
    )

    deployment = selectors.active_deployment(station=station)
    assert response.status_code == 302
    assert response["Location"] == deployment_url(deployment)
    assert deployment.version == version
    assert deployment.confidence_threshold == 0.75
    assert deployment.pass_review_rate == 0.05
    assert [(t.defect_type, t.threshold) for t in deployment.defect_thresholds.all()] == [
        (crack, 0.6)
    ]
    assert list(deployment.always_review.all()) == [cap]
    assert deployment.activated_by == engineer
    entry = DeploymentHistory.objects.get()
    assert (entry.action, entry.to_deployment, entry.by) == ("activate", deployment, engineer)
    page = browser.get(response["Location"])
    assert "bottle v1 now serves CAP-1" in " ".join(page_messages(page))


def test_activation_form_offers_only_ready_versions(browser):
    ready = factories.version_row(model_name="bottle")
    invalid = factories.version_row(model_name="bottle", status="invalid")
    factories.version_row(model_name="bottle", status="uploaded")

    form = browser.get(ACTIVATE_URL).context["form"]
    response = browser.post(
        ACTIVATE_URL, activation_data(station=factories.station(), version=invalid)
    )

    assert list(form.fields["version"].queryset) == [ready]
    assert "Select a valid choice" in " ".join(response.context["form"].errors["version"])
    assert nothing_deployed()


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"confidence_threshold": "1.5"}, "less than or equal to 1"),
        ({"pass_review_rate": "-0.1"}, "greater than or equal to 0"),
        ({"edge_recheck_rate": "lots"}, "Enter a number"),
        ({"thresholds-0-threshold": "2"}, "less than or equal to 1"),
        ({"thresholds-0-threshold": ""}, "both a defect type and its threshold"),
        (
            {"thresholds-1-defect_type": "CRACK", "thresholds-1-threshold": "0.5"},
            "crack has two thresholds",
        ),
    ],
    ids=["confidence", "pass-review", "not-a-number", "defect-threshold", "half-row", "twice"],
)
def test_bad_activation_shows_errors_and_changes_nothing(browser, fields, words):
    station = factories.station(code="CAP-1")
    version = factories.version_row(model_name="bottle")
    crack = version.mappings.get(label="crack").defect_type
    data = activation_data(
        station=station,
        version=version,
        **{"thresholds-0-defect_type": crack.pk, "thresholds-0-threshold": "0.5"},
    )
    data.update({k: (crack.pk if v == "CRACK" else v) for k, v in fields.items()})

    response = browser.post(ACTIVATE_URL, data)

    assert response.status_code == 200
    html = response.content.decode()
    assert words in html
    assert "nothing was saved" in html
    assert nothing_deployed()


@pytest.mark.parametrize(
    ("version_fields", "words"),
    [
        ({"mapping": {"ok": None, "missing_cap": "missing_cap"}}, "unmapped: crack"),
        ({"mapping": {"ok": "ok", "missing_cap": "cap", "crack": "crack"}}, "no defect"),
    ],
    ids=["unmapped", "nothing-can-pass"],
)
def test_ready_but_not_fully_mapped_version_is_refused_by_the_form(browser, version_fields, words):
    version = factories.version_row(model_name="bottle", **version_fields)

    response = browser.post(
        ACTIVATE_URL, activation_data(station=factories.station(), version=version)
    )

    assert response.status_code == 200
    assert words in " ".join(response.context["form"].errors["version"])
    assert nothing_deployed()


def test_product_of_another_line_is_refused_by_the_form(browser):
    station = factories.station(code="CAP-1")
    product = factories.product(sku="JAR-1", lines=[factories.line(code="L9")])
    version = factories.version_row(model_name="bottle")

    response = browser.post(
        ACTIVATE_URL, activation_data(station=station, version=version, product=product.pk)
    )

    assert "JAR-1 does not run on line" in " ".join(response.context["form"].errors["product"])
    assert nothing_deployed()


# --- Existing deployments --------------------------------------------------------------------


def test_deployment_page_is_read_only_and_shows_the_slot_history(browser):
    station = factories.station(code="CAP-1")
    first = factories.deployment(station_obj=station, version=factories.version_row(model_name="b"))
    second = factories.deployment(
        station_obj=station, version=factories.version_row(model_name="b")
    )

    response = browser.get(deployment_url(second))
    html = response.content.decode()

    assert response.status_code == 200
    assert 'name="_save"' not in html
    assert "b v1" in html and "b v2" in html  # from → to in the history table
    assert deployment_url(first) in html
    assert browser.post(deployment_url(second), {"confidence_threshold": "0.1"}).status_code == 403
    assert browser.post(f"{DEPLOYMENTS_URL}{second.pk}/delete/", {"post": "yes"}).status_code == 403
    second.refresh_from_db()
    assert second.confidence_threshold == 0.8


def test_rollback_action_walks_back_and_says_what_serves(browser, engineer):
    station = factories.station(code="CAP-1")
    deployments = [
        factories.deployment(station_obj=station, version=factories.version_row(model_name="b"))
        for _ in range(3)
    ]

    served = []
    for _ in range(3):
        current = selectors.active_deployment(station=station)
        response = browser.post(
            DEPLOYMENTS_URL,
            {"action": "rollback_selected", "_selected_action": [current.pk]},
            follow=True,
        )
        served.append(selectors.active_deployment(station=station).pk)

    assert served == [deployments[1].pk, deployments[0].pk, deployments[0].pk]
    assert "nothing to roll back to" in " ".join(page_messages(response))
    rollbacks = DeploymentHistory.objects.filter(action="rollback")
    assert rollbacks.count() == 2
    assert {entry.by for entry in rollbacks} == {engineer}


def test_reactivate_and_deactivate_actions(browser):
    station = factories.station(code="CAP-1")
    first = factories.deployment(station_obj=station, version=factories.version_row(model_name="b"))
    second = factories.deployment(
        station_obj=station, version=factories.version_row(model_name="b")
    )

    browser.post(DEPLOYMENTS_URL, {"action": "reactivate_selected", "_selected_action": [first.pk]})
    assert selectors.active_deployment(station=station).pk == first.pk

    refused = browser.post(
        DEPLOYMENTS_URL,
        {"action": "reactivate_selected", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )
    assert "at most one deployment per station" in " ".join(page_messages(refused))
    assert selectors.active_deployment(station=station).pk == first.pk

    browser.post(DEPLOYMENTS_URL, {"action": "deactivate_selected", "_selected_action": [first.pk]})
    assert selectors.active_deployment(station=station) is None
    assert list(DeploymentHistory.objects.order_by("id").values_list("action", flat=True)) == [
        "activate",
        "activate",
        "activate",
        "deactivate",
    ]


def test_history_admin_lists_switches_and_cannot_be_edited(browser):
    station = factories.station(code="CAP-1")
    factories.deployment(station_obj=station, version=factories.version_row(model_name="b"))
    factories.deployment(station_obj=station, version=factories.version_row(model_name="b"))
    entry = DeploymentHistory.objects.order_by("-id").first()

    listing = browser.get(
        f"/admin/models_registry/deploymenthistory/?station__id__exact={station.pk}"
    )
    html = listing.content.decode()

    assert listing.status_code == 200
    assert "b v1" in html and "b v2" in html
    assert list(listing.context["cl"].result_list) == list(
        DeploymentHistory.objects.order_by("-at", "-id")
    )
    assert browser.get("/admin/models_registry/deploymenthistory/add/").status_code == 403
    assert (
        browser.post(
            f"/admin/models_registry/deploymenthistory/{entry.pk}/change/", {"action": "rollback"}
        ).status_code
        == 403
    )


# --- Who may --------------------------------------------------------------------------------------


def test_staff_without_registry_permissions_cannot_upload_activate_or_switch(client):
    clerk = factories.user(username="clerk", is_staff=True)
    clerk.user_permissions.add(
        Permission.objects.get(codename="view_deployment"),
        Permission.objects.get(codename="view_modelversion"),
    )
    client.force_login(clerk)
    station = factories.station(code="CAP-1")
    factories.deployment(station_obj=station, version=factories.version_row(model_name="b"))
    current = factories.deployment(
        station_obj=station, version=factories.version_row(model_name="b")
    )
    version = current.version

    assert client.get(UPLOAD_URL).status_code == 403
    assert client.get(ACTIVATE_URL).status_code == 403
    assert (
        client.post(ACTIVATE_URL, activation_data(station=station, version=version)).status_code
        == 403
    )
    assert client.post(f"{VERSIONS_URL}{version.pk}/validate/").status_code == 403
    listing = client.get(DEPLOYMENTS_URL)
    assert listing.status_code == 200
    assert listing.context["action_form"] is None  # no rollback, re-activate or deactivate
    client.post(DEPLOYMENTS_URL, {"action": "rollback_selected", "_selected_action": [current.pk]})
    assert selectors.active_deployment(station=station).pk == current.pk
    assert DeploymentHistory.objects.count() == 2


def test_inspectors_do_not_get_into_admin(client):
    client.force_login(factories.inspector())

    response = client.get(VERSIONS_URL)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
