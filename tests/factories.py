"""Small factory functions for test data: read them, there is no magic."""

import itertools

from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token

from masterdata import roles
from masterdata.models import DefectType, Line, Plant, Product, Shift, Station
from masterdata.services import station_token_rotate

_numbers = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{next(_numbers)}"


def plant(*, code: str | None = None, time_zone: str = "Europe/Paris", **fields) -> Plant:
    code = code or unique("P")
    return Plant.objects.create(
        code=code, name=fields.pop("name", f"Plant {code}"), time_zone=time_zone, **fields
    )


def line(*, code: str | None = None, plant_obj: Plant | None = None, **fields) -> Line:
    return Line.objects.create(code=code or unique("L"), plant=plant_obj or plant(), **fields)


def station(*, code: str | None = None, line_obj: Line | None = None, **fields) -> Station:
    return Station.objects.create(code=code or unique("S"), line=line_obj or line(), **fields)


def station_with_token(**fields) -> tuple[Station, str]:
    obj = station(**fields)
    return obj, station_token_rotate(station=obj)


def product(*, sku: str | None = None, lines: list[Line] = (), **fields) -> Product:
    obj = Product.objects.create(
        sku=sku or unique("SKU"), name=fields.pop("name", "Yogurt 125 g"), **fields
    )
    obj.lines.set(lines)
    return obj


def defect_type(*, code: str | None = None, severity: str = "major", **fields) -> DefectType:
    code = code or unique("D")
    return DefectType.objects.create(
        code=code, name=fields.pop("name", code.replace("_", " ")), severity=severity, **fields
    )


def shift(*, plant_obj: Plant, name: str, start, end) -> Shift:
    return Shift.objects.create(plant=plant_obj, name=name, start=start, end=end)


def user(
    *, username: str | None = None, role: str | None = None, password: str = "pw", **fields
) -> User:
    obj = User.objects.create_user(username=username or unique("user"), password=password, **fields)
    if role is not None:
        obj.groups.add(Group.objects.get(name=role))
        if role == roles.QUALITY_ENGINEERS:
            obj.is_staff = True
            obj.save(update_fields=["is_staff"])
    return obj


def engineer(**fields) -> User:
    return user(role=roles.QUALITY_ENGINEERS, **fields)


def inspector(**fields) -> User:
    return user(role=roles.INSPECTORS, **fields)


def viewer(**fields) -> User:
    return user(role=roles.VIEWERS, **fields)


def api_token(user_obj: User) -> str:
    return Token.objects.get_or_create(user=user_obj)[0].key


# --- Registry and inspections without running a model ------------------------
# For tests about admin, deployments, dashboards and reports, where no frame is
# classified. Tests that classify frames use a real validated model instead
# (see tests/tf_models.py).


def version_row(
    *,
    model_name: str | None = None,
    labels=("ok", "missing_cap", "crack"),
    mapping: dict | None = None,
    status: str = "ready",
    **fields,
):
    """A ModelVersion row marked ``status`` with label mappings, and no real artifact.

    ``mapping`` maps label → defect code (created if missing) or None for
    'no defect'; by default the first label is 'no defect' and the others map
    to defect types of the same code.
    """
    from django.core.files.base import ContentFile

    from models_registry.models import LabelMapping, MLModel, ModelVersion

    model, _ = MLModel.objects.get_or_create(name=model_name or unique("model"))
    number = model.versions.count() + 1
    version = ModelVersion(
        model=model,
        number=number,
        artifact_format="savedmodel_zip",
        sha256=f"{number:064x}",
        size_bytes=4,
        labels=list(labels),
        status=status,
        input_height=32,
        input_width=32,
        input_channels=3,
        input_dtype="float32",
        serving_runtime="tflite" if status == "ready" else "",
        **fields,
    )
    version.artifact.save("model.zip", ContentFile(b"PK\x05\x06"), save=False)
    version.save()
    if mapping is None:
        mapping = {label: (None if i == 0 else label) for i, label in enumerate(labels)}
    for index, label in enumerate(labels):
        code = mapping.get(label, "unmapped")
        if code == "unmapped":
            LabelMapping.objects.create(version=version, index=index, label=label)
        elif code is None:
            LabelMapping.objects.create(version=version, index=index, label=label, no_defect=True)
        else:
            defect, _ = DefectType.objects.get_or_create(
                code=code, defaults={"name": code.replace("_", " ")}
            )
            LabelMapping.objects.create(
                version=version, index=index, label=label, defect_type=defect
            )
    return version


def deployment(
    *, station_obj: Station, version=None, product_obj: Product | None = None, **options
):
    """An active deployment, made through the real activation service."""
    from models_registry.services import deployment_activate

    return deployment_activate(
        station=station_obj, version=version or version_row(), product=product_obj, **options
    )


def inspection_row(
    *,
    deployment_obj,
    verdict: str = "pass",
    label: str | None = None,
    confidence: float = 0.97,
    captured_at=None,
    product_obj: Product | None = None,
    review_status: str | None = None,
    **fields,
):
    """An Inspection row as the API would have written it, with a tiny stored image."""
    from django.core.files.base import ContentFile
    from django.utils import timezone

    from inspection.models import Inspection
    from masterdata.selectors import plant_time

    station_obj = deployment_obj.station
    mappings = {m.label: m for m in deployment_obj.version.mappings.select_related("defect_type")}
    if label is None:
        label = (
            next(m.label for m in mappings.values() if m.no_defect)
            if verdict == "pass"
            else (next(m.label for m in mappings.values() if m.defect_type_id))
        )
    defect = mappings[label].defect_type if label in mappings else None
    captured_at = captured_at or timezone.now()
    when = plant_time(station_obj.line.plant, captured_at)
    if review_status is None:
        review_status = "not_required" if verdict == "pass" else "pending"
    inspection = Inspection(
        station=station_obj,
        line=station_obj.line,
        product=product_obj,
        deployment=deployment_obj,
        model_version=deployment_obj.version,
        verdict=verdict,
        label=label,
        defect_type=defect,
        confidence=confidence,
        top_k=[{"label": label, "confidence": confidence}],
        latency_ms=3.0,
        review_status=review_status,
        final_defect_type=defect,
        final_is_defect=defect is not None,
        image_sha256="0" * 64,
        image_content_type="image/jpeg",
        image_width=64,
        image_height=48,
        captured_at=captured_at,
        local_date=when.local_date,
        shift=when.shift,
        shift_date=when.shift_date,
        **fields,
    )
    inspection.image.save(
        f"frames/test/{unique('f')}.jpg", ContentFile(b"\xff\xd8\xff\xd9"), save=False
    )
    inspection.save()
    return inspection
