"""Validation of bring-your-own models: safe unpacking, a sandboxed load, the TFLite fast path.

The worker side (``service``, ``runner``, ``archive``) never imports
TensorFlow; the ``sandbox`` module runs as a separate, limited process and
imports nothing from Django. This package's ``__init__`` stays import-free
so the sandbox can start without Django.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models_registry.models import ModelVersion


def validate_version_now(version_id: int, **options) -> "ModelVersion":
    """Validate a version now (see ``service.validate_version_now``)."""
    from models_registry.validation.service import validate_version_now as validate

    return validate(version_id, **options)
