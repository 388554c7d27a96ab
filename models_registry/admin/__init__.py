"""Admin of the registry: upload, inspect, map, validate and deploy model versions.

One module per model; importing them here is what registers them when the
admin autodiscovers ``models_registry.admin``. Pages that make rows through a
service use common.admin_forms; their HTML is in templates/admin/models_registry/.
"""

from models_registry.admin import (
    dataset,
    deployment,
    evaluation,
    history,
    mlmodel,
    training,
    version,
)

__all__ = [
    "dataset",
    "deployment",
    "evaluation",
    "history",
    "mlmodel",
    "training",
    "version",
]
