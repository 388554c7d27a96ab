"""From the bytes a camera sent to the array a model version expects.

Decoding is the largest cost after the model, so JPEGs are decoded at a
reduced scale when the model needs fewer pixels (Pillow's ``draft``), and
sizes are checked from the header before any pixel is decoded.
"""

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png"}


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
        return ACCEPTED_FORMATS[self.format]

    @property
    def extension(self) -> str:
        return "jpg" if self.format == "JPEG" else "png"


def open_frame(data: bytes, *, max_pixels: int) -> Frame:
    """Read and check a frame's header: JPEG or PNG, within the pixel limit."""
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
    if image.format not in ACCEPTED_FORMATS:
        raise FrameError(f"{image.format} images are not accepted; send a JPEG or PNG.")
    width, height = image.size
    if width < 1 or height < 1:
        raise FrameError("The image has no pixels.")
    if width * height > max_pixels:
        raise FrameError(
            f"The image is {width}x{height} = {width * height:,} pixels; "
            f"the limit is {max_pixels:,}. Send a smaller frame."
        )
    return Frame(image=image, format=image.format, width=width, height=height)


def _fit(image: Image.Image, prep: Preprocessing) -> Image.Image:
    size = (prep.width, prep.height)
    if prep.resize_mode == "letterbox":
        return ImageOps.pad(image, size, method=Image.Resampling.BILINEAR, color=0)
    if prep.resize_mode == "center_crop":
        return ImageOps.fit(image, size, method=Image.Resampling.BILINEAR)
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.BILINEAR)


def model_input(frame: Frame, prep: Preprocessing) -> np.ndarray:
    """Decode and prepare the frame: a (1, H, W, C) array in the declared dtype and scale."""
    mode = "L" if prep.color_mode == "grayscale" or prep.channels == 1 else "RGB"
    image = frame.image
    if frame.format == "JPEG":
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
