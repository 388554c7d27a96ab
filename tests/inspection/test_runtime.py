"""The runtime: preprocessing as declared, TFLite or SavedModel serving, the per-process cache."""

import io

import numpy as np
import pytest
from django.core.files.base import ContentFile
from PIL import Image

from common.preprocessing import Preprocessing, model_input, open_frame
from inspection.runtime import ModelCache, RuntimeLoadError, model_cache
from models_registry.runtime import configured_runtime
from models_registry.runtime.tensorflow import TensorFlowRuntime
from tests.images import BLUE, GREEN, GREY, RED, frame_bytes
from tests.registry import ready_version


def prep(**overrides) -> Preprocessing:
    return Preprocessing(
        **{"height": 32, "width": 32, "channels": 3, "dtype": "float32", **overrides}
    )


def two_colour_jpeg(size=(64, 32)) -> bytes:
    """Left half red, right half blue."""
    image = Image.new("RGB", size, RED)
    image.paste(BLUE, (size[0] // 2, 0, size[0], size[1]))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_jpeg_is_decoded_at_reduced_scale_when_the_version_allows_it():
    frame = open_frame(frame_bytes(RED, size=(640, 480)), max_pixels=10**8)
    batch = model_input(frame, prep(jpeg_draft=True))
    assert batch.shape == (1, 32, 32, 3)
    # Pillow decoded an eighth of each side, not the full 640x480.
    assert frame.image.size == (80, 60)


@pytest.mark.parametrize(
    ("scale", "low", "high"), [("0_1", 0.0, 1.0), ("-1_1", -1.0, 1.0), ("0_255", 0.0, 255.0)]
)
def test_value_scale(scale, low, high):
    batch = model_input(
        open_frame(frame_bytes(RED, fmt="PNG"), max_pixels=10**8), prep(value_scale=scale)
    )
    assert batch.dtype == np.float32
    assert batch[0, 0, 0].tolist() == pytest.approx([high, low, low], abs=1e-5)


def test_uint8_models_get_raw_pixels():
    batch = model_input(
        open_frame(frame_bytes(GREEN, fmt="PNG"), max_pixels=10**8), prep(dtype="uint8")
    )
    assert batch.dtype == np.uint8
    assert batch[0, 5, 5].tolist() == [0, 255, 0]


def test_greyscale_model_gets_one_channel():
    batch = model_input(
        open_frame(frame_bytes(GREY, fmt="PNG"), max_pixels=10**8),
        prep(channels=1, color_mode="grayscale"),
    )
    assert batch.shape == (1, 32, 32, 1)
    assert batch[0, 0, 0, 0] == pytest.approx(128 / 255, abs=1e-3)


def test_letterbox_keeps_the_aspect_ratio_and_pads_with_black():
    batch = model_input(
        open_frame(two_colour_jpeg(), max_pixels=10**8), prep(resize_mode="letterbox")
    )
    assert batch[0, 0, 16].tolist() == [0.0, 0.0, 0.0]  # padding band at the top
    assert batch[0, 16, 2].tolist() == pytest.approx([1.0, 0.0, 0.0])  # red on the left
    assert batch[0, 16, 30].tolist() == pytest.approx([0.0, 0.0, 1.0])  # blue on the right


def test_center_crop_keeps_the_middle():
    batch = model_input(
        open_frame(two_colour_jpeg((128, 32)), max_pixels=10**8), prep(resize_mode="center_crop")
    )
    # The middle 32x32 of a 128x32 image: half red, half blue, no padding.
    assert batch[0, 16, 2].tolist() == pytest.approx([1.0, 0.0, 0.0])
    assert batch[0, 16, 30].tolist() == pytest.approx([0.0, 0.0, 1.0])
    assert batch[0, 0, 16].sum() > 0.9


def frame(colour):
    return open_frame(frame_bytes(colour, fmt="PNG"), max_pixels=10**8)


def test_the_runtime_setting_names_the_registry_tensorflow_runtime():
    assert type(configured_runtime()) is TensorFlowRuntime


@pytest.mark.django_db
def test_tflite_and_savedmodel_serving_agree():
    version = ready_version(model_name="bottle")
    tflite = ModelCache(TensorFlowRuntime()).get(version)
    version.serving_runtime = "savedmodel"
    version.save()
    saved = ModelCache(TensorFlowRuntime()).get(version)
    assert (tflite.kind, saved.kind) == ("tflite", "savedmodel")
    for colour in (RED, GREEN, BLUE, GREY):
        fast, reference = tflite.classify(frame(colour)), saved.classify(frame(colour))
        assert np.allclose(fast.scores, reference.scores, atol=1e-3)
    green = saved.classify(frame(GREEN))
    assert green.labels == tuple(version.labels)
    assert green.labels[int(np.argmax(green.scores))] == version.labels[1]


@pytest.mark.django_db
def test_logits_are_turned_into_probabilities():
    version = ready_version(model_name="bottle")
    version.outputs_probabilities = False  # as if the model ended without softmax
    version.save()
    scores = ModelCache(TensorFlowRuntime()).get(version).classify(frame(RED)).scores
    assert scores.sum() == pytest.approx(1.0, abs=1e-5)
    # softmax of probabilities (1, 0, 0) = (e, 1, 1) / (e + 2)
    assert scores[0] == pytest.approx(np.e / (np.e + 2), abs=1e-4)


@pytest.mark.django_db
def test_a_version_is_loaded_once_and_again_after_revalidation():
    version = ready_version(model_name="bottle")
    cache = ModelCache(TensorFlowRuntime())
    first = cache.get(version)
    assert cache.get(version) is first
    version.resize_mode = "letterbox"  # preprocessing changed: reload with it
    version.save()
    second = cache.get(version)
    assert second is not first
    assert second.preprocessing.resize_mode == "letterbox"
    assert cache.release_except(set()) == [version.pk]
    assert cache.loaded_version_ids() == set()


@pytest.mark.django_db
def test_tampered_artifact_is_not_served(line_setup, api_client, _media_root):
    from inspection.models import Inspection

    version = line_setup["version"]
    model_cache().release_except(set())
    storage = version.tflite_artifact.storage
    name = version.tflite_artifact.name
    storage.delete(name)
    storage.save(name, ContentFile(b"not the model that was validated"))
    with pytest.raises(RuntimeLoadError, match="checksum"):
        ModelCache(TensorFlowRuntime()).get(version)

    api_client.credentials(HTTP_AUTHORIZATION=f"Token {line_setup['token']}")
    from tests.inspection.test_api_frames import post_frame

    response = post_frame(api_client, image=frame_bytes(RED))
    assert response.status_code == 503
    assert "could not be loaded" in response.json()["detail"]
    assert Inspection.objects.count() == 0
