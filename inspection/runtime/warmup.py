"""Keep this process's loaded models in step with what is deployed."""

import logging

from django.db import connection

from inspection.runtime import RuntimeLoadError, model_cache
from models_registry.models import ModelVersion
from models_registry.selectors import deployed_version_ids

logger = logging.getLogger(__name__)


def sync_deployed_models() -> set[int]:
    """Load and warm every deployed version not loaded yet; release the others.

    Runs at worker start-up and whenever a deployment changes anywhere, so the
    next frame finds its model warm. A version that fails to load is logged
    and skipped: the other stations keep serving.
    """
    try:
        deployed = deployed_version_ids()
        cache = model_cache()
        for version in ModelVersion.objects.filter(pk__in=deployed).select_related("model"):
            try:
                cache.get(version)
            except RuntimeLoadError:
                logger.exception("Could not load %s", version)
        cache.release_except(deployed)
        return cache.loaded_version_ids()
    finally:
        connection.close()  # runs in a pool thread: don't leave its connection open
