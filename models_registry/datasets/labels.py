"""Dataset label names: what is accepted, and what a new label means by default."""

import unicodedata

from django.core.exceptions import ValidationError

from masterdata.models import DefectType
from models_registry.datasets.models import MAX_LABEL_CHARS

# The rule that maps a version's output labels is the one used here too.
from models_registry.validation.service import NO_DEFECT_LABELS, _normalised


def label_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a label (folder names and labels.csv alike), or None."""
    shown = repr(name[:40])
    if not name.strip():
        return "A label name is empty."
    if len(name) > MAX_LABEL_CHARS:
        return f"The label {shown}… is longer than {MAX_LABEL_CHARS} characters."
    if any(unicodedata.category(char).startswith("C") for char in name):
        return f"The label {shown} holds control or invisible characters."
    if "/" in name or "\\" in name:
        return f"The label {shown} holds a path character ('/' or '\\')."
    if name.strip() in {".", ".."} or ".." in name:
        return f"The label {shown} holds '..'."
    if name != name.strip():
        return f"The label {shown} starts or ends with spaces."
    return None


def check_label_name(name: str) -> str:
    problem = label_name_problem(name)
    if problem:
        raise ValidationError({"label": problem})
    return name


def default_meaning(
    name: str, defect_types: dict[str, DefectType]
) -> tuple[DefectType | None, bool]:
    """(defect type, no_defect) for a new label: 'ok', 'good'... mean no defect; a defect
    type's code (any case) maps to it; anything else stays unmapped for the engineer."""
    if _normalised(name) in NO_DEFECT_LABELS:
        return None, True
    return defect_types.get(name.lower()), False


def active_defect_types() -> dict[str, DefectType]:
    return {d.code.lower(): d for d in DefectType.objects.filter(archived=False)}
