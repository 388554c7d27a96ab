"""Uploaded model artifacts: which format a file name means, and its checksum and size."""

import hashlib
from typing import IO

from django.core.exceptions import ValidationError

from models_registry.choices import ArtifactFormat

ARTIFACT_SUFFIXES = {
    ".zip": ArtifactFormat.SAVEDMODEL_ZIP,
    ".tar.gz": ArtifactFormat.SAVEDMODEL_TAR,
    ".tgz": ArtifactFormat.SAVEDMODEL_TAR,
    ".keras": ArtifactFormat.KERAS,
}


def artifact_format_for(filename: str) -> ArtifactFormat:
    """The artifact format a file name declares; refused when it names none we read."""
    lowered = filename.lower()
    for suffix, artifact_format in ARTIFACT_SUFFIXES.items():
        if lowered.endswith(suffix):
            return artifact_format
    raise ValidationError(
        {
            "artifact": (
                f"'{filename}' is not a model artifact. Upload a SavedModel directory as "
                ".zip or .tar.gz, or a Keras model as .keras."
            )
        }
    )


def sha256_and_size(stream: IO[bytes]) -> tuple[str, int]:
    """The stream's SHA-256 and length, read in chunks; the stream is rewound after."""
    digest = hashlib.sha256()
    size = 0
    stream.seek(0)
    for chunk in iter(lambda: stream.read(1024 * 1024), b""):
        digest.update(chunk)
        size += len(chunk)
    stream.seek(0)
    return digest.hexdigest(), size
