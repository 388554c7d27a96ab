"""Bases for fine-tuning: a ready version whose Keras model has a convolutional part to reuse.

Checked before any job exists, from the version's fields and the .keras
file's config.json (read as JSON, never loaded): a SavedModel keeps no layers
to reuse, and a model without convolutions has no features worth keeping.
"""

import json
import zipfile

from django.core.exceptions import ValidationError

from models_registry.choices import ArtifactFormat, VersionStatus
from models_registry.models import ModelVersion

CONV_CLASSES = {"Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Conv2DTranspose"}
MAX_CONFIG_BYTES = 16 * 1024 * 1024


def _class_names(node) -> set[str]:
    """Every layer class named anywhere in a Keras config (nested models included)."""
    found = set()
    if isinstance(node, dict):
        if isinstance(node.get("class_name"), str):
            found.add(node["class_name"])
        for value in node.values():
            found |= _class_names(value)
    elif isinstance(node, list):
        for value in node:
            found |= _class_names(value)
    return found


def _layer_classes(version: ModelVersion) -> set[str]:
    try:
        with (
            version.artifact.storage.open(version.artifact.name, "rb") as handle,
            zipfile.ZipFile(handle) as bundle,
            bundle.open("config.json") as source,
        ):
            config = json.loads(source.read(MAX_CONFIG_BYTES + 1))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        raise ValidationError(
            {"base": f"The Keras file of {version} cannot be read; upload it again."}
        ) from None
    return _class_names(config)


def check_base(version: ModelVersion) -> dict:
    """What fine-tuning takes from ``version`` (input size, channels, scale); refuses a base
    that is not ready, not a Keras model, not square, or without a convolutional part."""
    if version.status != VersionStatus.READY:
        raise ValidationError({"base": f"{version} is not ready; fine-tune from a ready version."})
    if version.artifact_format != ArtifactFormat.KERAS:
        raise ValidationError(
            {
                "base": f"{version} was uploaded as a SavedModel, which keeps no layers to "
                "reuse; upload the base as a .keras file (model.save('base.keras'))."
            }
        )
    if version.input_height != version.input_width:
        raise ValidationError(
            {
                "base": f"{version} takes {version.input_width}x{version.input_height} images; "
                "fine-tuning supports square inputs only."
            }
        )
    if not _layer_classes(version) & CONV_CLASSES:
        raise ValidationError(
            {
                "base": f"{version} has no convolutional part (no Conv2D layer) whose features "
                "could be reused; use the 'default' recipe or another base."
            }
        )
    return {
        "base_version": version.pk,
        "input_size": version.input_height,
        "color_mode": "grayscale" if version.input_channels == 1 else "rgb",
        "base_value_scale": version.value_scale,
        "base_input_dtype": version.input_dtype or "float32",
    }
