"""Fine-tuning: a ready Keras version's convolutional part reused with a new head."""

import pytest
from django.core.files.base import ContentFile

from common.jobs import job_run
from common.preprocessing import Preprocessing
from models_registry.models import ModelVersion
from models_registry.services import model_create, version_upload
from models_registry.validation import validate_version_now
from tests import factories
from tests.models_registry.test_api import client_for
from tests.models_registry.test_training import FAST, snapshot_from, start
from tests.registry import ready_version
from tests.tf_models import colour_classifier, keras_file

pytestmark = pytest.mark.django_db


def keras_version(model, name: str) -> ModelVersion:
    """``model`` uploaded as a .keras file and validated, as an engineer brings one."""
    upload = ContentFile(keras_file(model), name="base.keras")
    version = version_upload(model=model_create(name=name), artifact=upload, labels=["a", "b", "c"])
    version = validate_version_now(version.pk)
    assert version.status == "ready", version.status_reason
    return version


def small_cnn():
    """A tiny greyscale CNN with three outputs, as if trained on another line's parts."""
    import keras

    inputs = keras.Input((32, 32, 1), name="image")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="features")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


@pytest.fixture
def api():
    return client_for(factories.engineer(username="qe"))


def test_fine_tuning_reuses_a_keras_base_and_records_it_as_the_parent(api):
    base = keras_version(small_cnn(), "other-line")
    snapshot = snapshot_from(api, "parts", {"good": 10, "scratch": 10})
    body = {"model": "other-line", "version": base.number}
    response = start(api, snapshot, model="scratches", recipe="finetune", settings=FAST)
    assert response.status_code == 400 and "needs a base version" in response.json()["detail"]
    response = api.post(
        "/api/v1/trainings/",
        {
            "dataset": "parts",
            "snapshot": snapshot.number,
            "model": "scratches",
            "recipe": "finetune",
            "base": body,
            "settings": FAST,
        },
        format="json",
    )
    assert response.status_code == 202, response.content
    chosen = response.json()["settings_chosen"]
    assert chosen["input_size"] == 32 and chosen["color_mode"] == "grayscale"
    assert chosen["why"]["input_size"] == "the base version's input"
    assert response.json()["parent"] == body

    job_run(response.json()["job"]["id"])
    run = api.get(f"/api/v1/trainings/{response.json()['id']}/").json()
    assert run["state"] == "done", run["error"]
    version = ModelVersion.objects.get(model__name="scratches", number=1)
    assert version.status == "ready" and version.labels == ["good", "scratch"]
    assert version.training_run.parent == base and "Fine-tuned from" in version.notes
    assert Preprocessing.for_version(version).as_dict()["input_dtype"] == "uint8"


def test_bases_without_a_reusable_convolutional_part_are_refused_before_any_job(api):
    snapshot = snapshot_from(api, "parts", {"good": 10, "scratch": 10})
    savedmodel = ready_version(model_name="bottle")
    dense_only = keras_version(colour_classifier(), "dense-only")

    def finetune(version, **settings):
        return api.post(
            "/api/v1/trainings/",
            {
                "dataset": "parts",
                "snapshot": snapshot.number,
                "model": "scratches",
                "recipe": "finetune",
                "settings": settings,
                "base": {"model": version.model.name, "version": version.number},
            },
            format="json",
        )

    response = finetune(savedmodel)
    assert response.status_code == 400 and "keeps no layers to reuse" in response.json()["detail"]
    response = finetune(dense_only)
    assert response.status_code == 400
    assert "has no convolutional part" in response.json()["detail"]
    response = api.post(
        "/api/v1/trainings/",
        {
            "dataset": "parts",
            "snapshot": snapshot.number,
            "model": "scratches",
            "base": {"model": "bottle", "version": savedmodel.number},
        },
        format="json",
    )
    assert response.status_code == 400 and "for the 'finetune' recipe" in response.json()["detail"]
    assert api.get("/api/v1/trainings/1/").status_code == 404
