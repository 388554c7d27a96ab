"""Loading a version's serving artifact: the one loader the line and the lab share.

The registry owns versions and their artifacts, so loading one lives here;
serving (``inspection.runtime``, its per-process cache and warm-up) and the
evaluator both load through ``configured_runtime()``, the runtime class named
in ``LINESIGHT["RUNTIME"]``.
"""

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from models_registry.runtime.base import (
    Classifier,
    Prediction,
    Runtime,
    RuntimeLoadError,
    softmax,
)

__all__ = [
    "Classifier",
    "Prediction",
    "Runtime",
    "RuntimeLoadError",
    "configured_runtime",
    "softmax",
]


@cache
def configured_runtime() -> Runtime:
    """This process's runtime, the class named in settings (resolved once)."""
    return import_string(settings.LINESIGHT["RUNTIME"])()
