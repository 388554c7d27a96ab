"""What an evaluation compares: the classes, each image's truth, each output's class.

When every version's labels are the dataset's label names, classes are those
names. Otherwise both sides go through their label mappings (a defect type
code, or "no defect") and the classes are those meanings, so a model saying
"scratch_deep" is right on an image labelled "scratch" when both mean the
same defect type. Anything that cannot be placed is refused before a job starts.
"""

from dataclasses import dataclass

from django.core.exceptions import ValidationError

from models_registry.datasets.models import DatasetLabel, DatasetSnapshot, SnapshotImage
from models_registry.evaluation.models import EvaluationSplit, LabelSpace
from models_registry.models import ModelVersion

NO_DEFECT = "no defect"


@dataclass(frozen=True)
class LabelPlan:
    space: str
    classes: tuple[str, ...]
    truth: dict[int, str]  # dataset label id -> class
    outputs: dict[int, tuple[str, ...]]  # version id -> class of each output, in order
    # For the line simulation: defect code of each truth class / version output (None: good).
    truth_codes: dict[str, str | None] | None
    output_codes: dict[int, tuple[str | None, ...]] | None


def split_items(*, snapshot: DatasetSnapshot, split: str):
    """The snapshot's images in ``split`` ("all": every image), in a stable order."""
    items = SnapshotImage.objects.filter(snapshot=snapshot)
    if split != EvaluationSplit.ALL:
        items = items.filter(split=split)
    return items.order_by("id")


def _code(meaning_holder) -> str | None:
    return None if meaning_holder.no_defect else meaning_holder.defect_type.code


def _meaning(holder) -> str:
    return NO_DEFECT if holder.no_defect else holder.defect_type.code


def _unmapped(names: list[str], whose: str) -> ValidationError:
    """Labels must be mapped to be compared by meaning; ``names`` are the unmapped ones."""
    return ValidationError(
        {
            "version": f"The labels differ between the dataset and {whose}, so they are "
            f"compared through their defect-type mappings; map {', '.join(names)} to a "
            "defect type or 'no defect' first."
        }
    )


def label_plan(*, versions: list[ModelVersion], labels: list[DatasetLabel]) -> LabelPlan:
    """The classes of an evaluation of ``versions`` on images with ``labels``."""
    names = [label.name for label in labels]
    if all(set(version.labels) >= set(names) for version in versions):
        # In the champion's output order: the order people know the labels in.
        classes = tuple(dict.fromkeys([*(lb for v in versions for lb in v.labels), *names]))
        return LabelPlan(
            space=LabelSpace.LABELS,
            classes=classes,
            truth={label.pk: label.name for label in labels},
            outputs={v.pk: tuple(v.labels) for v in versions},
            truth_codes=_truth_codes(labels, versions[0]),
            output_codes=_output_codes(versions),
        )
    unmapped = [label.name for label in labels if not label.is_mapped]
    if unmapped:
        raise _unmapped(unmapped, "the version")
    output_codes = _output_codes(versions, strict=True)
    truth = {label.pk: _meaning(label) for label in labels}
    for version in versions:
        known = {NO_DEFECT if code is None else code for code in output_codes[version.pk]}
        missing = sorted(set(truth.values()) - known)
        if missing:
            raise ValidationError(
                {
                    "version": f"No label of {version} means {', '.join(missing)}, which "
                    "images of this split show; it could never be right on them."
                }
            )
    outputs = {
        pk: tuple(NO_DEFECT if code is None else code for code in codes)
        for pk, codes in output_codes.items()
    }
    meanings = set(truth.values()).union(*outputs.values())
    classes = tuple(sorted(meanings, key=lambda meaning: (meaning != NO_DEFECT, meaning)))
    return LabelPlan(
        space=LabelSpace.MEANINGS,
        classes=classes,
        truth=truth,
        outputs=outputs,
        truth_codes={_meaning(label): _code(label) for label in labels},
        output_codes=output_codes,
    )


def _truth_codes(labels: list[DatasetLabel], version: ModelVersion) -> dict | None:
    """Each label's defect code: the dataset's mapping, else the version's for the same
    name (the names agree, so the meanings do); None when some label has neither."""
    by_name = {m.label: m for m in version.mappings.select_related("defect_type")}
    codes = {}
    for label in labels:
        holder = label if label.is_mapped else by_name.get(label.name)
        if holder is None or not holder.is_mapped:
            return None
        codes[label.name] = _code(holder)
    return codes


def _output_codes(versions: list[ModelVersion], strict: bool = False):
    """Each version's outputs as defect codes; None (or an error) when one is unmapped."""
    codes = {}
    for version in versions:
        mappings = sorted(version.mappings.select_related("defect_type"), key=lambda m: m.index)
        unmapped = [m.label for m in mappings if not m.is_mapped]
        if unmapped or len(mappings) != len(version.labels):
            if strict:
                raise _unmapped(unmapped or list(version.labels), str(version))
            return None
        codes[version.pk] = tuple(_code(m) for m in mappings)
    return codes
