"""The cheap check at upload: refuse an artifact whose listing alone shows it cannot validate.

An archive without saved_model.pb (where validation looks for it), or a
.keras file that is not a Keras 3 file, is refused while the engineer is still
on the upload form, not minutes later by the worker. The rules are
``archive``'s, the same validation applies after unpacking; nothing is
unpacked or loaded here.
"""

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.files import File

from models_registry.choices import ArtifactFormat
from models_registry.validation import archive
from models_registry.validation.errors import ModelRejected
from models_registry.validation.runner import archive_limits


@contextmanager
def _local_path(artifact: File) -> Iterator[Path]:
    """The upload as a file on disk: Django's temporary file, or a copy of a small upload."""
    temporary = getattr(artifact, "temporary_file_path", None)
    if temporary is not None:
        yield Path(temporary())
        return
    with tempfile.NamedTemporaryFile(prefix="linesight-upload-", suffix=".artifact") as copy:
        artifact.seek(0)
        shutil.copyfileobj(artifact, copy, archive.CHUNK)
        copy.flush()
        artifact.seek(0)
        yield Path(copy.name)


def artifact_listing_check(*, artifact: File, artifact_format: str) -> None:
    """Raise ValidationError when the artifact's listing already shows what validation refuses."""
    limits = archive_limits()
    try:
        with _local_path(artifact) as path:
            if artifact_format == ArtifactFormat.KERAS:
                archive.inspect_keras_file(path, limits)
                return
            if artifact_format == ArtifactFormat.SAVEDMODEL_ZIP:
                listing = archive.zip_listing(path, limits)
            else:
                listing = archive.tar_gz_listing(path, limits)
            archive.savedmodel_folder(listing)
    except ModelRejected as rejection:
        raise ValidationError({"artifact": rejection.reason}) from None
    finally:
        artifact.seek(0)
