"""Synthetic camera frames of the demo product: drinking-yogurt bottles on a conveyor.

A frame shows one strawberry-yogurt bottle on a modular belt in front of the
machine frame. Four classes: ``ok``; ``missing_cap`` (open neck, no cap);
``wrong_label`` (another flavour's label); ``no_label`` (bare bottle). Position,
size, tilt, belt and wall, lighting, blur and sensor noise vary per frame.

Everything is drawn with Pillow and NumPy from a seeded generator: the same seed
gives the same pixels on every machine and nothing is downloaded. A scene's
random draws do not depend on the class, so one generator state rendered as
``ok`` and as ``missing_cap`` differs only where the cap is.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

CLASSES = ("ok", "missing_cap", "wrong_label", "no_label")
FRAME_SIZE = (640, 480)  # what the demo stations post
REFERENCE_WIDTH = 640  # blur radii and noise are given for this width

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class LabelDesign:
    """A flavour's label: background, fruit and the name printed on it."""

    name: str
    background: Colour
    fruit: Colour
    leaf: Colour


PRODUCT_LABEL = LabelDesign("STRAWBERRY", (212, 44, 78), (190, 18, 38), (70, 150, 60))
OTHER_LABELS = (
    LabelDesign("BLUEBERRY", (38, 70, 160), (52, 40, 110), (70, 150, 60)),
    LabelDesign("KIWI", (78, 156, 64), (120, 90, 40), (40, 110, 40)),
    LabelDesign("MANGO", (242, 150, 30), (250, 196, 40), (70, 150, 60)),
    LabelDesign("VANILLA", (236, 214, 150), (250, 244, 220), (120, 90, 40)),
)
CAP_COLOURS: tuple[Colour, ...] = ((200, 28, 56), (226, 92, 132), (206, 168, 60))


@dataclass(frozen=True)
class Scene:
    """Everything random about one frame, in units relative to the frame."""

    wall: Colour
    seams: tuple[float, ...]
    rail_y: float
    belt_top: float
    belt: Colour
    slat_pitch: float
    slat_phase: float
    lip_top: float
    centre_x: float
    base_y: float
    height: float
    body_ratio: float
    plastic: Colour
    cap: Colour
    label_shift: float
    print_tint: Colour
    other_label: int
    tilt_degrees: float
    highlight: float
    highlight_strength: float
    shadow_dx: float
    gain: float
    slope: float
    tint: tuple[float, float, float]
    blur: float
    motion: float
    noise: float


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw a scene; the number and order of draws never depend on the class."""
    grey = _uniform(rng, 70, 150)
    wall = (
        int(grey + rng.integers(-12, 4)),
        int(grey + rng.integers(-6, 8)),
        int(grey + rng.integers(0, 22)),
    )
    seams = tuple(sorted(float(x) for x in rng.uniform(0, 1, size=3)))
    belt_top = _uniform(rng, 0.56, 0.66)
    belt_grey = _uniform(rng, 35, 95)
    belt_kind = int(rng.integers(0, 3))  # grey, blue or green plastic belt
    belt = {
        0: (int(belt_grey), int(belt_grey), int(belt_grey + 4)),
        1: (int(belt_grey * 0.6), int(belt_grey * 0.8), int(belt_grey * 1.3)),
        2: (int(belt_grey * 0.7), int(belt_grey * 1.1), int(belt_grey * 0.8)),
    }[belt_kind]
    lip_top = _uniform(rng, 0.93, 0.97)
    height = _uniform(rng, 0.48, 0.64)
    base_y = min(belt_top + _uniform(rng, 0.18, 0.3), lip_top - 0.015)
    base_y = max(base_y, height + 0.02)  # the cap stays in the frame
    white = _uniform(rng, 228, 250)
    return Scene(
        wall=wall,
        seams=seams,
        rail_y=_uniform(rng, 0.3, 0.48),
        belt_top=belt_top,
        belt=belt,
        slat_pitch=_uniform(rng, 0.035, 0.07),
        slat_phase=_uniform(rng, 0, 1),
        lip_top=lip_top,
        centre_x=_uniform(rng, 0.28, 0.72),
        base_y=base_y,
        height=height,
        body_ratio=_uniform(rng, 0.4, 0.47),
        plastic=(int(white), int(white - rng.integers(0, 6)), int(white - rng.integers(2, 12))),
        cap=CAP_COLOURS[int(rng.integers(0, len(CAP_COLOURS)))],
        label_shift=_uniform(rng, -0.03, 0.03),
        print_tint=tuple(int(v) for v in rng.integers(-10, 11, size=3)),
        other_label=int(rng.integers(0, len(OTHER_LABELS))),
        tilt_degrees=_uniform(rng, -3.0, 3.0),
        highlight=_uniform(rng, -0.45, 0.45),
        highlight_strength=_uniform(rng, 0.04, 0.2),
        shadow_dx=_uniform(rng, -0.12, 0.12),
        gain=_uniform(rng, 0.62, 1.22),
        slope=_uniform(rng, -0.35, 0.35),
        tint=(_uniform(rng, 0.92, 1.08), 1.0, _uniform(rng, 0.92, 1.08)),
        blur=_uniform(rng, 0.0, 1.6),
        motion=_uniform(rng, 0.0, 7.0) if rng.uniform() < 0.3 else 0.0,
        noise=_uniform(rng, 1.5, 7.0),
    )


def _shade(colour: Colour, factor: float) -> Colour:
    return tuple(max(0, min(255, round(c * factor))) for c in colour)


def _tinted(colour: Colour, tint: Colour) -> Colour:
    return tuple(max(0, min(255, c + t)) for c, t in zip(colour, tint, strict=True))


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont | None:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, AttributeError, TypeError):
        return None


def _draw_background(scene: Scene, width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), scene.wall)
    draw = ImageDraw.Draw(image)
    line = max(1, round(width / 320))
    belt_top = round(scene.belt_top * height)
    for seam in scene.seams:
        x = round(seam * width)
        draw.line([(x, 0), (x, belt_top)], fill=_shade(scene.wall, 0.8), width=line)
        draw.line([(x + line, 0), (x + line, belt_top)], fill=_shade(scene.wall, 1.12), width=1)
    # The stainless guide rail behind the bottles.
    rail_top = round(scene.rail_y * height)
    rail_h = max(2, round(height * 0.035))
    draw.rectangle([0, rail_top, width, rail_top + rail_h], fill=(172, 176, 182))
    draw.line([(0, rail_top + 1), (width, rail_top + 1)], fill=(220, 224, 228), width=line)
    draw.line([(0, rail_top + rail_h), (width, rail_top + rail_h)], fill=(96, 98, 104), width=line)
    # The belt: modular plastic, hinges across the direction of travel.
    draw.rectangle([0, belt_top, width, height], fill=scene.belt)
    draw.line([(0, belt_top), (width, belt_top)], fill=_shade(scene.belt, 1.5), width=line)
    pitch = scene.slat_pitch * width
    x = -scene.slat_phase * pitch
    while x < width:
        draw.line([(x, belt_top), (x, height)], fill=_shade(scene.belt, 0.7), width=line)
        draw.line(
            [(x + line, belt_top), (x + line, height)], fill=_shade(scene.belt, 1.18), width=1
        )
        x += pitch
    # The front lip of the conveyor frame.
    lip = round(scene.lip_top * height)
    draw.rectangle([0, lip, width, height], fill=(150, 154, 160))
    draw.line([(0, lip), (width, lip)], fill=(212, 216, 222), width=line)
    return image


def _draw_shadow(image: Image.Image, scene: Scene, geometry: "_Bottle") -> None:
    """A soft shadow on the belt under the bottle, drawn in place."""
    cx = geometry.centre_x + scene.shadow_dx * geometry.body_width * 2
    half_w = geometry.body_width * 0.62
    half_h = max(2.0, image.height * 0.02)
    soft = max(1.0, half_h)
    pad = round(3 * soft)
    left, top = round(cx - half_w) - pad, round(geometry.base_y - half_h) - pad
    mask = Image.new("L", (round(2 * half_w) + 2 * pad, round(2 * half_h) + 2 * pad), 0)
    ImageDraw.Draw(mask).ellipse([pad, pad, mask.width - pad, mask.height - pad], fill=150)
    mask = mask.filter(ImageFilter.GaussianBlur(soft))
    image.paste((10, 10, 12), (left, top, left + mask.width, top + mask.height), mask)


@dataclass(frozen=True)
class _Bottle:
    """The bottle in pixels: its axis, base, height and body width."""

    centre_x: float
    base_y: float
    height: float
    body_width: float


def _draw_label(
    draw: ImageDraw.ImageDraw,
    design: LabelDesign,
    tint: Colour,
    box: tuple[float, float, float, float],
) -> None:
    left, top, right, bottom = box
    label_h = bottom - top
    label_w = right - left
    draw.rectangle(box, fill=_tinted(design.background, tint))
    stripe = max(1.0, label_h * 0.07)
    draw.rectangle([left, top + stripe, right, top + 2 * stripe], fill=(245, 245, 240))
    draw.rectangle([left, bottom - 2 * stripe, right, bottom - stripe], fill=(245, 245, 240))
    # The fruit on a white plate.
    cx = (left + right) / 2
    cy = top + label_h * 0.42
    plate_w, plate_h = label_w * 0.3, label_h * 0.24
    draw.ellipse([cx - plate_w, cy - plate_h, cx + plate_w, cy + plate_h], fill=(248, 246, 240))
    fruit_w, fruit_h = plate_w * 0.5, plate_h * 0.72
    draw.ellipse(
        [cx - fruit_w, cy - fruit_h * 0.6, cx + fruit_w, cy + fruit_h],
        fill=_tinted(design.fruit, tint),
    )
    draw.polygon(
        [(cx - fruit_w, cy - fruit_h * 0.55), (cx + fruit_w, cy - fruit_h * 0.55), (cx, cy)],
        fill=design.leaf,
    )
    # The flavour's name, or strokes standing for it when the label is too small to read.
    text_y = top + label_h * 0.74
    font_size = round(label_h * 0.16)
    font = _font(font_size) if font_size >= 9 else None
    if font is not None:
        draw.text((cx, text_y), design.name, fill=(250, 250, 250), font=font, anchor="mm")
    else:
        bar_h = max(1.0, label_h * 0.07)
        draw.rectangle(
            [cx - label_w * 0.3, text_y - bar_h / 2, cx + label_w * 0.3, text_y + bar_h / 2],
            fill=(250, 250, 250),
        )


def _shoulder(geometry: _Bottle, neck_width: float, origin: tuple[float, float]) -> list:
    """The curved shoulder from the body up to the neck, as a polygon."""
    ox, oy = origin
    bottom = oy - geometry.height * 0.6
    top = oy - geometry.height * 0.8
    right, left = [], []
    for step in range(9):
        t = step / 8
        ease = 0.5 - 0.5 * math.cos(math.pi * t)
        half = geometry.body_width / 2 + (neck_width / 2 - geometry.body_width / 2) * ease
        y = bottom + (top - bottom) * t
        right.append((ox + half, y))
        left.append((ox - half, y))
    return right + left[::-1]


def _draw_neck_and_cap(
    draw: ImageDraw.ImageDraw,
    scene: Scene,
    label: str,
    geometry: _Bottle,
    base: tuple[float, float],
    line: int,
) -> None:
    """The neck, the ring under the cap and the cap, or the open thread when it is missing."""
    h, bw = geometry.height, geometry.body_width
    ox, oy = base
    plastic = (*scene.plastic, 255)
    neck_w = bw * 0.5
    neck_top = oy - h * (0.93 if label == "missing_cap" else 0.87)
    draw.rectangle([ox - neck_w / 2, neck_top, ox + neck_w / 2, oy - h * 0.79], fill=plastic)
    ring_w = neck_w * 1.18
    draw.rectangle(
        [ox - ring_w / 2, oy - h * 0.845, ox + ring_w / 2, oy - h * 0.825],
        fill=_shade(scene.plastic, 0.93),
    )
    if label == "missing_cap":
        for k in range(3):  # the thread the cap screws on
            y = oy - h * (0.865 + 0.02 * k)
            draw.line(
                [(ox - neck_w / 2, y + h * 0.008), (ox + neck_w / 2, y)],
                fill=_shade(scene.plastic, 0.82),
                width=line,
            )
        opening_h = max(2.0, h * 0.03)
        draw.ellipse(
            [ox - neck_w / 2, neck_top - opening_h / 2, ox + neck_w / 2, neck_top + opening_h / 2],
            fill=_shade(scene.plastic, 0.88),
        )
        inner = neck_w * 0.36
        draw.ellipse(
            [ox - inner, neck_top - opening_h * 0.32, ox + inner, neck_top + opening_h * 0.32],
            fill=(58, 54, 50),
        )
    else:
        cap_w = bw * 0.58
        cap_top, cap_bottom = oy - h, oy - h * 0.855
        draw.rounded_rectangle(
            [ox - cap_w / 2, cap_top, ox + cap_w / 2, cap_bottom],
            radius=max(1, cap_w * 0.08),
            fill=scene.cap,
        )
        ridges = 9
        for k in range(1, ridges):
            x = ox - cap_w / 2 + cap_w * k / ridges
            draw.line([(x, cap_top + 1), (x, cap_bottom - 1)], fill=_shade(scene.cap, 0.78))
        draw.line(
            [(ox - cap_w / 2 + 1, cap_top + 1), (ox + cap_w / 2 - 1, cap_top + 1)],
            fill=_shade(scene.cap, 1.25),
            width=line,
        )


def _shade_cylinder(layer: Image.Image, scene: Scene, ox: float, bw: float) -> Image.Image:
    """Cylinder shading and a specular highlight, across the bottle's width."""
    layer_w = layer.width
    pixels = np.asarray(layer, dtype=np.float32)
    columns = (np.arange(layer_w, dtype=np.float32) + 0.5 - ox) / (bw / 2)
    roundness = np.sqrt(np.clip(1 - columns**2, 0, 1))
    profile = 0.74 + 0.26 * roundness
    profile += scene.highlight_strength * np.exp(-(((columns - scene.highlight) / 0.14) ** 2))
    pixels[..., :3] = np.clip(pixels[..., :3] * profile[None, :, None], 0, 255)
    return Image.fromarray(pixels.astype(np.uint8), "RGBA")


def _draw_bottle(scene: Scene, label: str, geometry: _Bottle, scale: float) -> Image.Image:
    """The bottle on a transparent layer whose bottom centre is the bottle's base."""
    h, bw = geometry.height, geometry.body_width
    margin = max(4, round(bw * 0.25))
    layer_w = round(bw + 2 * margin)
    layer_h = round(h + 2 * margin)
    layer = Image.new("RGBA", (layer_w, layer_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    ox, oy = layer_w / 2, layer_h - margin  # axis and base in the layer
    plastic = (*scene.plastic, 255)
    neck_w = bw * 0.5
    line = max(1, round(scale * 2))

    # Body and shoulder.
    draw.rounded_rectangle(
        [ox - bw / 2, oy - h * 0.6 - 1, ox + bw / 2, oy], radius=max(1, bw * 0.12), fill=plastic
    )
    draw.polygon(_shoulder(geometry, neck_w, (ox, oy)), fill=plastic)
    grip = oy - h * 0.56
    draw.line([(ox - bw / 2, grip), (ox + bw / 2, grip)], fill=_shade(scene.plastic, 0.9), width=1)

    _draw_neck_and_cap(draw, scene, label, geometry, (ox, oy), line)

    # The label band around the body.
    label_top = oy - h * (0.5 + scene.label_shift)
    label_bottom = oy - h * (0.12 + scene.label_shift)
    box = (ox - bw / 2, label_top, ox + bw / 2, label_bottom)
    if label == "no_label":
        # Glue lines where the label should be, barely visible.
        for y in (label_top + h * 0.02, label_bottom - h * 0.02):
            draw.line([(box[0], y), (box[2], y)], fill=_shade(scene.plastic, 0.95), width=line)
    else:
        design = OTHER_LABELS[scene.other_label] if label == "wrong_label" else PRODUCT_LABEL
        _draw_label(draw, design, scene.print_tint, box)

    layer = _shade_cylinder(layer, scene, ox, bw)
    return layer.rotate(
        scene.tilt_degrees, resample=Image.Resampling.BILINEAR, center=(ox, oy), expand=False
    )


def _gaussian_blur(pixels: np.ndarray, sigma: float) -> np.ndarray:
    """A separable Gaussian blur of an (H, W, 3) float array, edges repeated."""
    radius = max(1, math.ceil(2.5 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    height, width = pixels.shape[:2]
    padded = np.pad(pixels, ((radius, radius), (0, 0), (0, 0)), mode="edge")
    down = np.zeros_like(pixels)
    for offset, weight in enumerate(taps):
        down += weight * padded[offset : offset + height]
    padded = np.pad(down, ((0, 0), (radius, radius), (0, 0)), mode="edge")
    across = np.zeros_like(pixels)
    for offset, weight in enumerate(taps):
        across += weight * padded[:, offset : offset + width]
    return across


def _apply_camera(image: Image.Image, scene: Scene, scale: float) -> np.ndarray:
    """Lens blur, motion blur and uneven, tinted lighting, as a float array."""
    pixels = np.asarray(image, dtype=np.float32)
    if scene.blur * scale >= 0.2:
        pixels = _gaussian_blur(pixels, scene.blur * scale)
    height, width = pixels.shape[:2]
    steps = round(scene.motion * scale)
    if steps >= 1:
        pixels = sum(np.roll(pixels, shift, axis=1) for shift in range(steps + 1)) / (steps + 1)
    across = np.linspace(-0.5, 0.5, width, dtype=np.float32)
    down = np.linspace(-0.5, 0.5, height, dtype=np.float32)
    light = scene.gain * (1 + scene.slope * across)[None, :] * (1 - 0.48 * down**2)[:, None]
    pixels *= light[..., None]
    pixels *= np.asarray(scene.tint, dtype=np.float32)
    return pixels


def _add_noise(pixels: np.ndarray, sigma: float, rng: np.random.Generator) -> Image.Image:
    """Sensor noise on brightness (one draw per pixel, shared by the channels)."""
    if sigma > 0:
        noise = rng.standard_normal(pixels.shape[:2], dtype=np.float32)
        noise *= sigma
        pixels += noise[..., None]
    pixels += 0.5
    np.clip(pixels, 0, 255, out=pixels)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def render_frame(
    label: str, rng: np.random.Generator, size: tuple[int, int] = FRAME_SIZE
) -> Image.Image:
    """One RGB frame of class ``label`` at ``size`` (width, height), drawn from ``rng``.

    Geometry is relative, and blur and noise are scaled to the width, so a
    small render looks like a large one scaled down (as a camera frame is
    before it reaches a model).
    """
    if label not in CLASSES:
        raise ValueError(f"Unknown class {label!r}; the classes are {', '.join(CLASSES)}.")
    width, height = size
    scale = width / REFERENCE_WIDTH
    scene = sample_scene(rng)
    bottle_h = scene.height * height
    geometry = _Bottle(
        centre_x=scene.centre_x * width,
        base_y=scene.base_y * height,
        height=bottle_h,
        body_width=bottle_h * scene.body_ratio,
    )
    image = _draw_background(scene, width, height)
    _draw_shadow(image, scene, geometry)
    layer = _draw_bottle(scene, label, geometry, scale)
    margin = (layer.width - geometry.body_width) / 2
    left = round(geometry.centre_x - layer.width / 2)
    top = round(geometry.base_y - (layer.height - margin))
    image.paste(layer, (left, top), layer)
    pixels = _apply_camera(image, scene, scale)
    return _add_noise(pixels, scene.noise * scale, rng)


def frame_rng(seed: int, class_index: int, number: int) -> np.random.Generator:
    """The generator of frame ``number`` of a class: independent of every other frame."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(class_index, number)))


def render_arrays(
    per_class: int,
    seed: int,
    *,
    render_size: tuple[int, int],
    input_size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """A balanced set as uint8 pixels (N, H, W, 3) resized to ``input_size``, and class indices."""
    count = per_class * len(CLASSES)
    width, height = input_size
    images = np.empty((count, height, width, 3), dtype=np.uint8)
    labels = np.empty(count, dtype=np.int64)
    row = 0
    for number in range(per_class):
        for class_index, label in enumerate(CLASSES):
            frame = render_frame(label, frame_rng(seed, class_index, number), render_size)
            if frame.size != input_size:
                frame = frame.resize(input_size, Image.Resampling.BILINEAR)
            images[row] = np.asarray(frame)
            labels[row] = class_index
            row += 1
    return images, labels


def write_frames(
    directory: Path | str,
    per_class: int | Mapping[str, int],
    seed: int,
    *,
    size: tuple[int, int] = FRAME_SIZE,
    quality: int = 88,
) -> list[Path]:
    """Write JPEG frames under ``directory/<class>/``, the layout of a labelled dataset.

    ``per_class`` is a count for every class or a count per class (for a
    realistic mix). Files already there with the same name are the same
    frame (names carry the seed) and are kept, so a second run is fast.
    """
    directory = Path(directory)
    counts = per_class if isinstance(per_class, Mapping) else dict.fromkeys(CLASSES, per_class)
    unknown = sorted(set(counts) - set(CLASSES))
    if unknown:
        raise ValueError(f"Unknown class(es) {', '.join(unknown)}; the classes are {CLASSES}.")
    written = []
    for class_index, label in enumerate(CLASSES):
        count = int(counts.get(label, 0))
        if count < 0:
            raise ValueError(f"Frame count for {label} must not be negative.")
        folder = directory / label
        folder.mkdir(parents=True, exist_ok=True)
        for number in range(count):
            path = folder / f"{label}-s{seed}-{number:05d}-{size[0]}x{size[1]}.jpg"
            if not path.exists():
                frame = render_frame(label, frame_rng(seed, class_index, number), size)
                partial = path.with_suffix(".part")
                frame.save(partial, "JPEG", quality=quality)
                partial.replace(path)
            written.append(path)
    return written
