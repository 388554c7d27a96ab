"""One preprocessing for serving, evaluation and training: the exact path is a plain Pillow
decode and resize, the fast path only when allowed, interpolation matched to TensorFlow.

Measured bounds (grey levels of 0..255, generated smooth, photo-like and noise
images, 300x300 -> 224/150/96, 64x48 -> 32, 32 -> 96, 640x480 -> 96):

- ``bilinear_tf`` vs tf.image.resize(bilinear, antialias=False): max 1.01.
- ``bilinear`` (Pillow) vs tf.image.resize(bilinear, antialias=True): max 1.0.
- ``area`` (Pillow box) vs tf.image.resize(area): max 1.0 when the input size is a
  whole multiple of the output size (or smaller); at other ratios TensorFlow weighs
  partly covered pixels and the two differ (up to 57 on a photo-like 300 -> 224).
- For contrast, Pillow's bilinear vs TensorFlow's default (no antialiasing)
  differs by up to 70 grey levels on a photo-like 640x480 -> 96: the reason a
  version must say which one it was trained with.
"""

import io
import os

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps

from common.preprocessing import Preprocessing, model_input, open_frame

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Pillow rounds to whole grey levels; TensorFlow returns floats.
TF_BOUND = 1.5


def photo_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth shading, a dark disc with a hard edge and sensor noise: a part on a belt."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    shade = 127 + 60 * np.sin(x / 17.0) + 50 * np.cos(y / 23.0)
    blotches = np.kron(rng.normal(0, 10, (height // 8 + 1, width // 8 + 1)), np.ones((8, 8)))
    image = Image.fromarray(np.clip(shade + blotches[:height, :width], 0, 255).astype(np.uint8))
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(2)), dtype=float)
    pixels[(x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(height, width) / 4) ** 2] *= 0.3
    return np.clip(pixels + rng.normal(0, 3, pixels.shape), 0, 255).astype(np.uint8)


def noise(height: int, width: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)


def encoded(pixels: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **options)
    return buffer.getvalue()


def rgb_jpeg(size=(640, 480), seed: int = 2) -> bytes:
    channels = [photo_like(size[1], size[0], seed + c) for c in range(3)]
    return encoded(np.stack(channels, axis=2), "JPEG", quality=90)


def prepared(data: bytes, **fields) -> np.ndarray:
    prep = Preprocessing(**{"height": 96, "width": 96, "channels": 3, "dtype": "float32", **fields})
    return model_input(open_frame(data, max_pixels=10**8), prep)


def tf_resize(pixels: np.ndarray, size: tuple[int, int], **options) -> np.ndarray:
    import tensorflow as tf

    batch = pixels[np.newaxis, ..., np.newaxis].astype(np.float32)
    return tf.image.resize(batch, size, **options).numpy()[0, ..., 0]


def ours(pixels: np.ndarray, size: tuple[int, int], interpolation: str) -> np.ndarray:
    """Through model_input, as raw 0..255 values, from a lossless PNG."""
    prep = Preprocessing(
        height=size[0],
        width=size[1],
        channels=1,
        dtype="float32",
        value_scale="0_255",
        color_mode="grayscale",
        interpolation=interpolation,
    )
    return model_input(open_frame(encoded(pixels), max_pixels=10**8), prep)[0, ..., 0]


def test_the_exact_path_is_a_plain_full_pillow_decode_and_resize():
    data = rgb_jpeg()
    plain = Image.open(io.BytesIO(data)).convert("RGB").resize((96, 96), Image.Resampling.BILINEAR)
    expected = np.asarray(plain, dtype=np.float32)[np.newaxis] / 255.0
    assert np.array_equal(prepared(data), expected)

    grey = Image.open(io.BytesIO(data)).convert("L").resize((96, 96), Image.Resampling.BOX)
    batch = prepared(data, channels=1, color_mode="grayscale", interpolation="area")
    assert np.array_equal(batch[0, ..., 0], np.asarray(grey, dtype=np.float32) / 255.0)


def test_reduced_scale_decoding_happens_only_when_the_version_allows_it():
    data = rgb_jpeg()
    exact_frame = open_frame(data, max_pixels=10**8)
    prep = Preprocessing(height=96, width=96, channels=3, dtype="float32")
    exact = model_input(exact_frame, prep)
    assert exact_frame.image.size == (640, 480)  # decoded in full

    fast_frame = open_frame(data, max_pixels=10**8)
    fast = model_input(fast_frame, Preprocessing(**{**prep.__dict__, "jpeg_draft": True}))
    assert fast_frame.image.size == (160, 120)  # a quarter of each side
    assert np.abs(fast - exact).max() > 0.01  # not the same tensor: hence the rule


@pytest.mark.parametrize(
    ("source", "size"), [((300, 300), (224, 224)), ((480, 640), (96, 96)), ((32, 32), (96, 96))]
)
@pytest.mark.parametrize("make", [photo_like, noise])
def test_bilinear_tf_matches_tensorflows_default_resize(make, source, size):
    pixels = make(*source)
    expected = tf_resize(pixels, size, method="bilinear", antialias=False)
    assert np.abs(ours(pixels, size, "bilinear_tf") - expected).max() <= TF_BOUND


@pytest.mark.parametrize(("source", "size"), [((300, 300), (224, 224)), ((480, 640), (96, 96))])
def test_pillow_bilinear_matches_tensorflows_antialiased_resize_not_its_default(source, size):
    pixels = photo_like(*source)
    antialiased = tf_resize(pixels, size, method="bilinear", antialias=True)
    default = tf_resize(pixels, size, method="bilinear", antialias=False)
    result = ours(pixels, size, "bilinear")
    assert np.abs(result - antialiased).max() <= TF_BOUND
    assert np.abs(result - default).max() > 10  # which is why bilinear_tf exists


@pytest.mark.parametrize(
    ("source", "size"), [((300, 300), (150, 150)), ((480, 640), (96, 128)), ((32, 32), (96, 96))]
)
@pytest.mark.parametrize("make", [photo_like, noise])
def test_area_matches_tensorflows_area_resize_at_whole_ratios(make, source, size):
    pixels = make(*source)
    expected = tf_resize(pixels, size, method="area")
    assert np.abs(ours(pixels, size, "area") - expected).max() <= TF_BOUND


def test_letterbox_and_centre_crop_are_pillows_pad_and_fit():
    data = rgb_jpeg(size=(200, 120))
    image = Image.open(io.BytesIO(data)).convert("RGB")
    for mode, expected in (
        ("letterbox", ImageOps.pad(image, (96, 96), method=Image.Resampling.BILINEAR)),
        ("center_crop", ImageOps.fit(image, (96, 96), method=Image.Resampling.BILINEAR)),
    ):
        batch = prepared(data, resize_mode=mode)
        assert np.array_equal(batch[0], np.asarray(expected, dtype=np.float32) / 255.0), mode


def test_bilinear_tf_crops_and_pads_like_the_other_interpolations():
    data = rgb_jpeg(size=(200, 120))
    for mode in ("letterbox", "center_crop"):
        pillow = prepared(data, resize_mode=mode)
        tf_like = prepared(data, resize_mode=mode, interpolation="bilinear_tf")
        # Same crop, same bands; only the sampling differs, and only a little on a smooth image.
        assert tf_like.shape == pillow.shape
        assert np.abs(tf_like - pillow).mean() < 0.02, mode
    letterboxed = prepared(data, resize_mode="letterbox", interpolation="bilinear_tf")
    assert letterboxed[0, :10].max() == 0.0  # black band above the picture


def test_the_manifest_round_trip_keeps_the_decoding():
    prep = Preprocessing(
        height=32, width=32, channels=3, dtype="uint8", interpolation="area", jpeg_draft=True
    )
    assert Preprocessing.from_dict(prep.as_dict()) == prep
    older = {key: value for key, value in prep.as_dict().items() if key != "jpeg_draft"}
    assert Preprocessing.from_dict(older).jpeg_draft is False  # an old manifest: exact path


def test_an_unknown_interpolation_is_refused():
    with pytest.raises(ValueError, match="nearest"):
        Preprocessing(height=8, width=8, channels=1, dtype="uint8", interpolation="nearest")
