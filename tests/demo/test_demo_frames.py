"""The demo's synthetic frames: reproducible, varied, and each defect visible where it belongs."""

import numpy as np
import pytest
from PIL import Image

from demo.frames import CLASSES, FRAME_SIZE, frame_rng, render_frame, write_frames


def pixels(label: str, seed: int = 11, number: int = 0, size=FRAME_SIZE) -> np.ndarray:
    return np.asarray(render_frame(label, frame_rng(seed, 0, number), size), dtype=np.int16)


def changed_rows(a: np.ndarray, b: np.ndarray, level: int = 40) -> tuple[int, int]:
    """First and last image row where two renders differ clearly."""
    rows = np.flatnonzero((np.abs(a - b).max(axis=2) > level).any(axis=1))
    assert rows.size, "the two frames do not differ visibly"
    return int(rows[0]), int(rows[-1])


def test_the_same_seed_draws_the_same_frame_and_another_seed_a_different_one():
    first = pixels("ok", seed=3)
    assert np.array_equal(first, pixels("ok", seed=3))
    assert not np.array_equal(first, pixels("ok", seed=4))
    assert not np.array_equal(first, pixels("ok", seed=3, number=1))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_each_defect_changes_the_bottle_only_where_the_defect_is(seed):
    ok = pixels("ok", seed)
    _, cap_bottom = changed_rows(ok, pixels("missing_cap", seed))
    label_top, label_bottom = changed_rows(ok, pixels("wrong_label", seed))
    bare_top, bare_bottom = changed_rows(ok, pixels("no_label", seed))
    # The cap sits above the label band; the wrong label and the missing
    # label change the same band of the body.
    assert cap_bottom < label_top
    assert abs(bare_top - label_top) < 12 and abs(bare_bottom - label_bottom) < 12
    assert label_bottom - label_top > 60  # a band a camera sees, not a few pixels


def test_a_missing_cap_uncovers_the_background_above_the_neck():
    ok, open_bottle = pixels("ok", 5), pixels("missing_cap", 5)
    top, bottom = changed_rows(ok, open_bottle)
    band = (slice(top, bottom + 1), slice(None))
    # The caps are saturated colours; the open neck is white plastic and the wall is grey.
    saturation = lambda image: (image[band].max(axis=2) - image[band].min(axis=2)).mean()  # noqa: E731
    assert saturation(ok) > saturation(open_bottle) + 5


def test_frames_vary_in_lighting_and_position():
    frames = [pixels("ok", seed=9, number=n, size=(160, 120)) for n in range(12)]
    brightness = [frame.mean() for frame in frames]
    assert max(brightness) - min(brightness) > 25
    # Where the bottle's red label is, column-wise, moves from frame to frame.
    centres = []
    for frame in frames:
        red = (frame[..., 0] > frame[..., 1] + 60) & (frame[..., 0] > frame[..., 2] + 40)
        centres.append(np.flatnonzero(red.any(axis=0)).mean())
    assert max(centres) - min(centres) > 20


def test_an_unknown_class_is_refused():
    with pytest.raises(ValueError, match="Unknown class 'cracked'"):
        render_frame("cracked", frame_rng(1, 0, 0))


def test_write_frames_writes_the_same_jpegs_under_one_folder_per_class(tmp_path):
    first = write_frames(tmp_path / "a", 2, seed=7)
    second = write_frames(tmp_path / "b", 2, seed=7)
    assert sorted(p.parent.name for p in first) == sorted([*CLASSES, *CLASSES])
    for a, b in zip(first, second, strict=True):
        assert a.relative_to(tmp_path / "a") == b.relative_to(tmp_path / "b")
        assert a.read_bytes() == b.read_bytes()
    with Image.open(first[0]) as image:
        assert (image.format, image.size, image.mode) == ("JPEG", FRAME_SIZE, "RGB")


def test_write_frames_takes_a_mix_and_keeps_frames_already_written(tmp_path):
    written = write_frames(tmp_path, {"ok": 3, "no_label": 1}, seed=1)
    assert [p.parent.name for p in written] == ["ok", "ok", "ok", "no_label"]
    stamps = [p.stat().st_mtime_ns for p in written]
    assert write_frames(tmp_path, {"ok": 3, "no_label": 1}, seed=1) == written
    assert [p.stat().st_mtime_ns for p in written] == stamps
    assert not list(tmp_path.rglob("*.part"))


def test_write_frames_refuses_an_unknown_class_before_writing_anything(tmp_path):
    with pytest.raises(ValueError, match="Unknown class"):
        write_frames(tmp_path / "frames", {"ok": 2, "dented": 1}, seed=1)
    assert not (tmp_path / "frames").exists()
