"""Labels of a model version: reading them as given, and telling workers when their mapping changed.

Shared by the upload services and validation, which both read labels and
both change label mappings.
"""

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db.models import F

from models_registry.models import ModelVersion

MAX_LABELS = 1000
MAX_LABEL_LENGTH = 100


def clean_labels(labels: Iterable[str]) -> list[str]:
    """Labels as a model's outputs are named: non-empty, unique, one line each."""
    cleaned = [str(label).strip() for label in labels]
    cleaned = [label for label in cleaned if label]
    if not cleaned:
        raise ValidationError({"labels": "Give at least one label, one per line."})
    if len(cleaned) > MAX_LABELS:
        raise ValidationError({"labels": f"At most {MAX_LABELS} labels are supported."})
    too_long = [label for label in cleaned if len(label) > MAX_LABEL_LENGTH]
    if too_long:
        raise ValidationError(
            {"labels": f"Label '{too_long[0][:40]}…' is longer than {MAX_LABEL_LENGTH} characters."}
        )
    duplicates = sorted({label for label in cleaned if cleaned.count(label) > 1})
    if duplicates:
        raise ValidationError(
            {"labels": f"Labels must be unique; repeated: {', '.join(duplicates)}."}
        )
    return cleaned


def parse_labels_text(text: str) -> list[str]:
    """Labels from a ``labels.txt`` (one per line) or a comma-separated field."""
    separator = "\n" if "\n" in text.strip() else ","
    return clean_labels(text.split(separator))


def mapping_revision_bump(*, version: ModelVersion) -> None:
    """Mark that ``version``'s label mappings changed, inside the caller's transaction.

    Workers key their decision rules on the revision, so the next frame
    anywhere is judged with the new mapping. ``version`` is updated too.
    """
    ModelVersion.objects.filter(pk=version.pk).update(mapping_revision=F("mapping_revision") + 1)
    version.refresh_from_db(fields=["mapping_revision"])
