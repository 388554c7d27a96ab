"""From the bytes a camera sent to the array a model version expects.

One module for serving, evaluation and training (no Django, no TensorFlow
here), so a frame and a dataset image of the same bytes become the same
tensor. Sizes are checked from the header before any pixel is decoded.

A version declares its resize interpolation, matched to how models are
trained elsewhere (the bounds are measured in tests/common/test_preprocessing.py):

- ``bilinear``: Pillow's antialiased bilinear ``resize``, bit for bit what a
  plain Pillow script does; tf.image.resize(antialias=True) within about one
  grey level (of 255).
- ``bilinear_tf``: bilinear sampling without antialiasing, what tf.image.resize
  and Keras' image_dataset_from_directory do by default, within about one
  grey level.
- ``area``: Pillow's box filter; tf.image.resize(method="area") within about
  one grey level when the sizes divide evenly (TensorFlow weighs partly
  covered pixels differently otherwise).

Reduced-scale JPEG decoding (Pillow's ``draft``: 1/2, 1/4 or 1/8 of each side
decoded directly) is about five times faster (640x480 to 96x96: 0.5 ms
instead of 2.6 ms) but is not the full decode a model was trained on, so it
is used only when the version allows it (``jpeg_draft``).
"""

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png"}  # what a camera may send
# Datasets also hold photographs saved by other tools.
DATASET_FORMATS = {**ACCEPTED_FORMATS, "BMP": "image/bmp", "TIFF": "image/tiff"}
_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "BMP": "bmp", "TIFF": "tif"}

INTERPOLATIONS = ("bilinear", "bilinear_tf", "area")
_PILLOW_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "area": Image.Resampling.BOX}


class FrameError(ValueError):
    """The bytes are not a frame the platform accepts; the message says why."""


@dataclass(frozen=True)
class Preprocessing:
    """What a model version declares about its input."""

    height: int
    width: int
    channels: int
    dtype: str
    resize_mode: str = "stretch"
    value_scale: str = "0_1"
    color_mode: str = "rgb"
    interpolation: str = "bilinear"
    jpeg_draft: bool = False  # the exact path unless the version allows the fast one

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"Unknown interpolation {self.interpolation!r}; use one of {INTERPOLATIONS}."
            )

    @classmethod
    def for_version(cls, version) -> "Preprocessing":
        return cls(
            height=version.input_height,
            width=version.input_width,
            channels=version.input_channels,
            dtype=version.input_dtype or "float32",
            resize_mode=version.resize_mode,
            value_scale=version.value_scale,
            color_mode=version.color_mode,
            interpolation=version.resize_interpolation,
            jpeg_draft=version.jpeg_draft,
        )

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocessing":
        """The preprocessing an edge manifest carries (``as_dict``); older manifests lack
        the interpolation and draft keys and get the exact path."""
        return cls(
            height=data["input_height"],
            width=data["input_width"],
            channels=data["input_channels"],
            dtype=data["input_dtype"],
            resize_mode=data["resize_mode"],
            value_scale=data["value_scale"],
            color_mode=data["color_mode"],
            interpolation=data.get("resize_interpolation", "bilinear"),
            jpeg_draft=bool(data.get("jpeg_draft", False)),
        )

    def as_dict(self) -> dict:
        return {
            "input_height": self.height,
            "input_width": self.width,
            "input_channels": self.channels,
            "input_dtype": self.dtype,
            "resize_mode": self.resize_mode,
            "value_scale": self.value_scale,
            "color_mode": self.color_mode,
            "resize_interpolation": self.interpolation,
            "jpeg_draft": self.jpeg_draft,
        }


@dataclass(frozen=True)
class Frame:
    """A frame whose header has been read and checked; pixels decode on demand."""

    image: Image.Image
    format: str
    width: int
    height: int

    @property
    def content_type(self) -> str:
        return DATASET_FORMATS[self.format]

    @property
    def extension(self) -> str:
        return _EXTENSIONS[self.format]


def open_frame(data: bytes, *, max_pixels: int, formats=ACCEPTED_FORMATS) -> Frame:
    """Read and check a frame's header: JPEG or PNG (or ``formats``), within the pixel limit."""
    if not data:
        raise FrameError("The image is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise FrameError(
            f"The image has more pixels than the limit of {max_pixels:,}; send a smaller frame."
        ) from None
    except UnidentifiedImageError:
        raise FrameError("The file is not an image Pillow can read; send a JPEG or PNG.") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise FrameError(f"The image is damaged: {exc}.") from None
    if image.format not in formats:
        raise FrameError(f"{image.format} images are not accepted; send {' or '.join(formats)}.")
    width, height = image.size
    if width < 1 or height < 1:
        raise FrameError("The image has no pixels.")
    if width * height > max_pixels:
        raise FrameError(
            f"The image is {width}x{height} = {width * height:,} pixels; "
            f"the limit is {max_pixels:,}. Send a smaller frame."
        )
    return Frame(image=image, format=image.format, width=width, height=height)


def _sample_bilinear(
    image: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float]
) -> Image.Image:
    """Bilinear sampling of ``box`` at each output pixel's centre, no antialiasing.

    Pillow's affine transform samples at (x + 0.5) * scale, the half-pixel
    centres tf.image.resize uses, so this is TensorFlow's default resize.
    """
    left, top, right, bottom = box
    scale_x, scale_y = (right - left) / size[0], (bottom - top) / size[1]
    return image.transform(
        size,
        Image.Transform.AFFINE,
        (scale_x, 0, left, 0, scale_y, top),
        resample=Image.Resampling.BILINEAR,
    )


def _resize(image: Image.Image, size: tuple[int, int], interpolation: str, box=None):
    box = box or (0, 0, image.width, image.height)
    if interpolation == "bilinear_tf":
        return _sample_bilinear(image, size, box)
    return image.resize(size, _PILLOW_FILTERS[interpolation], box=box)


def _cover_box(image: Image.Image, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The centred part of ``image`` with the aspect ratio of ``size`` (as ImageOps.fit)."""
    ratio = size[0] / size[1]
    if image.width / image.height > ratio:
        width = image.height * ratio
        left = (image.width - width) / 2
        return (left, 0, left + width, image.height)
    height = image.width / ratio
    top = (image.height - height) / 2
    return (0, top, image.width, top + height)


def _contained_size(image: Image.Image, size: tuple[int, int]) -> tuple[int, int]:
    """The largest size of ``image``'s aspect ratio inside ``size`` (as ImageOps.contain)."""
    if image.width / image.height > size[0] / size[1]:
        return (size[0], max(1, round(image.height / image.width * size[0])))
    return (max(1, round(image.width / image.height * size[1])), size[1])


def _fit(image: Image.Image, prep: Preprocessing) -> Image.Image:
    size = (prep.width, prep.height)
    if prep.resize_mode == "letterbox":
        inner = _contained_size(image, size)
        resized = _resize(image, inner, prep.interpolation)
        if inner == size:
            return resized
        canvas = Image.new(image.mode, size, 0)  # black bands, centred as ImageOps.pad
        canvas.paste(resized, (round((size[0] - inner[0]) / 2), round((size[1] - inner[1]) / 2)))
        return canvas
    if prep.resize_mode == "center_crop":
        return _resize(image, size, prep.interpolation, _cover_box(image, size))
    if image.size == size:
        return image
    return _resize(image, size, prep.interpolation)


def model_input(frame: Frame, prep: Preprocessing) -> np.ndarray:
    """Decode and prepare the frame: a (1, H, W, C) array in the declared dtype and scale."""
    mode = "L" if prep.color_mode == "grayscale" or prep.channels == 1 else "RGB"
    image = frame.image
    if prep.jpeg_draft and frame.format == "JPEG":
        # Decode at 1/2, 1/4 or 1/8 scale when the model needs that few pixels.
        image.draft(mode, (prep.width, prep.height))
    try:
        image = image.convert(mode)
    except (OSError, ValueError, SyntaxError) as exc:
        raise FrameError(f"The image is damaged: {exc}.") from None
    pixels = np.asarray(_fit(image, prep), dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    if pixels.shape[2] != prep.channels:
        pixels = np.repeat(pixels, prep.channels, axis=2)  # greyscale into an RGB model
    if prep.dtype == "uint8":
        return pixels[np.newaxis]
    values = pixels.astype(np.float32)
    if prep.value_scale == "0_1":
        values /= 255.0
    elif prep.value_scale == "-1_1":
        values = values / 127.5 - 1.0
    return values[np.newaxis]
