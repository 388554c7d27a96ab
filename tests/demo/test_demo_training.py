"""The demo trainer: a short run learns the classes and exports a model the platform can serve."""

import zipfile

import numpy as np
import pytest

from demo.frames import CLASSES
from demo.training import holdout_arrays, train_demo_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """A few hundred frames and a few epochs: seconds, not the full minute."""
    out = tmp_path_factory.mktemp("demo-model")
    return train_demo_model(
        out, train_per_class=80, holdout_per_class=15, epochs=6, batch_size=16, seed=5
    )


def test_a_short_run_is_clearly_better_than_chance_on_frames_it_never_saw(short_run):
    assert short_run.holdout_frames == 15 * len(CLASSES)
    assert short_run.train_frames == 80 * len(CLASSES)
    assert short_run.accuracy >= 0.6  # chance is 0.25


def test_the_export_is_a_savedmodel_with_labels_that_tensorflow_serves(short_run, tmp_path):
    import tensorflow as tf

    with zipfile.ZipFile(short_run.zip_path) as archive:
        names = set(archive.namelist())
        assert {"saved_model.pb", "labels.txt"} <= names
        assert archive.read("labels.txt").decode().split() == list(CLASSES)
        archive.extractall(tmp_path)
    serving = tf.saved_model.load(str(tmp_path)).signatures["serving_default"]
    ((name, spec),) = serving.structured_input_signature[1].items()
    assert (spec.dtype, spec.shape.as_list()) == (tf.float32, [None, 96, 96, 3])

    images, labels = holdout_arrays(10, seed=77)
    (scores,) = serving(**{name: tf.constant(images.astype(np.float32) / 255.0)}).values()
    scores = scores.numpy()
    assert scores.shape == (len(labels), len(CLASSES))
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-4)  # softmax, not logits
    assert np.mean(scores.argmax(axis=1) == labels) >= 0.6


def test_training_refuses_to_measure_on_its_own_training_frames(tmp_path):
    with pytest.raises(ValueError, match="held-out seed"):
        train_demo_model(tmp_path / "out", seed=3, holdout_seed=3)
    assert not (tmp_path / "out").exists()
