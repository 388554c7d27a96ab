"""Train/validation/test splits: seeded, stratified by label, grouped so no group spans splits.

Groups. An image's group is the one given (labels.csv ``group`` column, or
set later); without one it is derived from the file name: the stem with one
trailing shot number removed, so ``part17_2.jpg``, ``part17-3.png`` and
``part17 (4).jpg`` are all group ``part17``. A derived group with more than
``MAX_DERIVED_GROUP`` images is a naming scheme, not one part photographed a
few times (``cast_def_0_1004.jpeg`` would make the whole class one group), so
its images count as groups of one. ``grouping="none"`` makes every image its
own group.

Assignment. Groups are stratified by their most common label; within each
label, groups are shuffled with the seed, taken largest first, and each goes
to the split furthest below its share. The same images, settings and seed give
the same split.
"""

import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.core.exceptions import ValidationError

SPLITS = ("train", "validation", "test")
DEFAULT_SHARES = {"train": 0.7, "validation": 0.15, "test": 0.15}
GROUPINGS = ("auto", "none")
MAX_DERIVED_GROUP = 20
_SHOT_SUFFIX = re.compile(r"(?:\s*\(\d+\)|[_-]\d+)$")


@dataclass(frozen=True)
class Item:
    id: int
    label: int
    key: str  # the group key


def derive_group(name: str) -> str:
    """The group a file name implies: its stem without a trailing ``_<n>``, ``-<n>`` or `` (n)``."""
    stem = PurePosixPath(name.replace("\\", "/")).stem.strip()
    return (_SHOT_SUFFIX.sub("", stem).strip() or stem).lower()


def group_keys(rows: Iterable[tuple[int, str, str]], grouping: str) -> dict[int, str]:
    """Group key per image id, from (id, original name, given group) rows."""
    rows = list(rows)
    if grouping == "none":
        return {image_id: f"#{image_id}" for image_id, _, _ in rows}
    keys = {
        image_id: f"given:{group}" if group else f"name:{derive_group(name)}"
        for image_id, name, group in rows
    }
    sizes = Counter(key for key in keys.values() if key.startswith("name:"))
    return {
        image_id: f"#{image_id}" if sizes.get(key, 0) > MAX_DERIVED_GROUP else key
        for image_id, key in keys.items()
    }


def check_shares(shares: dict | None) -> dict[str, float]:
    shares = {**DEFAULT_SHARES, **(shares or {})}
    unknown = set(shares) - set(SPLITS)
    if unknown:
        raise ValidationError({"shares": f"Unknown split(s): {', '.join(sorted(unknown))}."})
    try:
        shares = {split: float(shares[split]) for split in SPLITS}
    except (TypeError, ValueError):
        raise ValidationError({"shares": "Give each share as a number between 0 and 1."}) from None
    if (
        any(not 0 <= value <= 1 for value in shares.values())
        or abs(sum(shares.values()) - 1) > 1e-6
    ):
        raise ValidationError(
            {"shares": "Shares are between 0 and 1 and add up to 1, e.g. 0.7, 0.15, 0.15."}
        )
    return shares


def _dominant_label(members: list[Item]) -> int:
    counts = Counter(item.label for item in members)
    return min(counts, key=lambda label: (-counts[label], label))


def assign_splits(
    items: list[Item], *, shares: dict[str, float], seed: int, fixed: dict[str, str] | None = None
) -> dict[int, str]:
    """Split per image id; groups in ``fixed`` keep the split they have (adding to a split)."""
    fixed = fixed or {}
    groups: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        groups[item.key].append(item)
    strata: dict[int, list[str]] = defaultdict(list)
    for key, members in groups.items():
        strata[_dominant_label(members)].append(key)
    rng = random.Random(seed)  # noqa: S311 - reproducible splits, not security
    open_splits = [split for split in SPLITS if shares[split] > 0]
    result: dict[int, str] = {}
    for label in sorted(strata):
        keys = sorted(strata[label])
        rng.shuffle(keys)
        keys.sort(key=lambda key: -len(groups[key]))  # stable: equal sizes stay shuffled
        total = sum(len(groups[key]) for key in keys)
        counts = Counter()
        for key in [k for k in keys if k in fixed] + [k for k in keys if k not in fixed]:
            split = fixed.get(key) or max(
                open_splits, key=lambda s: (shares[s] * total - counts[s], shares[s])
            )
            counts[split] += len(groups[key])
            result.update((item.id, split) for item in groups[key])
    return result
