"""A small plant for dashboard tests: one line, two stations, a deployed model, defect types.

Shared by the review, consumer, worker and browser tests; built with the
factories, nothing hidden.
"""

from dataclasses import dataclass

from django.db import transaction

from inspection import events
from masterdata.models import DefectType
from tests import factories


@dataclass
class Scene:
    line: object
    stations: list
    deployments: list
    defects: dict  # code -> DefectType
    inspector: object


def build(*, line_code: str | None = None, inspector_name: str | None = None) -> Scene:
    """Line with stations S-A/S-B serving labels ok / missing_cap (critical) / crack (minor)."""
    line = factories.line(code=line_code)
    defects = {
        code: DefectType.objects.get_or_create(
            code=code, defaults={"name": code.replace("_", " "), "severity": severity}
        )[0]
        for code, severity in (("missing_cap", "critical"), ("crack", "minor"))
    }
    version = factories.version_row(labels=("ok", "missing_cap", "crack"))
    stations = [factories.station(line_obj=line) for _ in range(2)]
    deployments = [factories.deployment(station_obj=s, version=version) for s in stations]
    inspector = factories.inspector(username=inspector_name) if inspector_name else None
    return Scene(
        line=line,
        stations=stations,
        deployments=deployments,
        defects=defects,
        inspector=inspector,
    )


def frame(deployment, *, broadcast: bool = True, **fields):
    """An inspection row as the API writes it, announced after commit like the API does."""
    with transaction.atomic():
        obj = factories.inspection_row(deployment_obj=deployment, **fields)
        if broadcast:
            transaction.on_commit(lambda: events.inspection_created(_reload(obj.pk)))
    return obj


def _reload(pk: int):
    from inspection.selectors import inspection_queryset

    return inspection_queryset().get(pk=pk)
