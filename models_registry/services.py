"""Writes to the model registry: uploads, label mappings, deployments.

Lock order (every write path that locks more than one row takes them in this
order): the station, then its deployments, then the rows created. Locks are
``FOR NO KEY UPDATE`` (``select_for_update(no_key=True)``): it serialises the
writers of a slot but does not conflict with the ``FOR KEY SHARE`` a frame's
INSERT takes on the station and deployment it references, so a swap never
waits for frames nor frames for a swap (plain ``FOR UPDATE`` deadlocked
with them on PostgreSQL). Nothing loads a model inside these transactions.
"""

from collections.abc import Iterable, Mapping

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import IntegrityError, models, transaction
from django.db.models import Max
from django.utils import timezone

from common.files import delete_on_error
from common.outbox import DEPLOYMENT_CHANGED, outbox_add
from masterdata.models import DefectType, Product, Station
from masterdata.selectors import station_scope
from models_registry.artifacts import artifact_format_for, sha256_and_size
from models_registry.choices import (
    ColorMode,
    DeploymentAction,
    ResizeInterpolation,
    ResizeMode,
    ValueScale,
    VersionStatus,
)
from models_registry.labels import clean_labels, mapping_revision_bump
from models_registry.models import (
    DefectThreshold,
    Deployment,
    DeploymentHistory,
    LabelMapping,
    MLModel,
    ModelVersion,
)
from models_registry.selectors import rollback_target, slots_served_by
from models_registry.signals import deployment_changed
from models_registry.validation.listing import artifact_listing_check


def model_create(*, name: str, description: str = "") -> MLModel:
    model = MLModel(name=name, description=description)
    model.full_clean()
    try:
        with transaction.atomic():
            model.save()
    except IntegrityError:
        # Two requests raced past full_clean with the same name.
        raise ValidationError({"name": f"A model named '{name}' already exists."}) from None
    return model


def version_upload(
    *,
    model: MLModel,
    artifact: File,
    labels: Iterable[str] | None = None,
    notes: str = "",
    uploaded_by: AbstractBaseUser | None = None,
    resize_interpolation: str = ResizeInterpolation.BILINEAR,
    jpeg_draft: bool = False,
    resize_mode: str = ResizeMode.STRETCH,
    value_scale: str = ValueScale.UNIT,
    color_mode: str = ColorMode.RGB,
) -> ModelVersion:
    """Store an uploaded artifact as the model's next version and queue its validation.

    Labels given here win over a ``labels.txt`` in the archive; without either,
    validation marks the version invalid. A version decodes JPEGs in full
    (the exact path) unless ``jpeg_draft`` says it was trained otherwise. The
    declared preprocessing stays through validation, except where the signature
    leaves no choice (uint8 input: 0..255; one channel: greyscale).
    """
    _check_choice("resize_interpolation", resize_interpolation, ResizeInterpolation)
    _check_choice("resize_mode", resize_mode, ResizeMode)
    _check_choice("value_scale", value_scale, ValueScale)
    _check_choice("color_mode", color_mode, ColorMode)
    artifact_format, sha256, size = _checked_artifact(artifact)
    cleaned_labels = clean_labels(labels) if labels is not None else []

    version = ModelVersion(
        model=model,
        artifact_format=artifact_format,
        sha256=sha256,
        size_bytes=size,
        labels=cleaned_labels,
        notes=notes,
        uploaded_by=uploaded_by,
        status=VersionStatus.UPLOADED,
        resize_interpolation=resize_interpolation,
        jpeg_draft=bool(jpeg_draft),
        resize_mode=resize_mode,
        value_scale=value_scale,
        color_mode=color_mode,
    )
    filename = artifact.name.replace("\\", "/").rsplit("/", 1)[-1]
    version.artifact.save(filename, artifact, save=False)
    with delete_on_error(version.artifact.storage, version.artifact.name), transaction.atomic():
        # Lock the model so two uploads never take the same number.
        MLModel.objects.select_for_update(no_key=True).filter(pk=model.pk).first()
        latest = model.versions.aggregate(latest=Max("number"))["latest"] or 0
        version.number = latest + 1
        version.save()
        transaction.on_commit(lambda: enqueue_validation(version))
    return version


def _checked_artifact(artifact: File) -> tuple[str, str, int]:
    """The artifact's format, SHA-256 and size, once it passed the upload's checks."""
    artifact_format = artifact_format_for(artifact.name or "")
    sha256, size = sha256_and_size(artifact)
    if size == 0:
        raise ValidationError({"artifact": "The uploaded file is empty."})
    limit = settings.LINESIGHT["MAX_ARTIFACT_BYTES"]
    if size > limit:
        raise ValidationError(
            {"artifact": f"The artifact is {size:,} bytes; the limit is {limit:,} bytes."}
        )
    artifact_listing_check(artifact=artifact, artifact_format=artifact_format)
    return artifact_format, sha256, size


def enqueue_validation(version: ModelVersion) -> None:
    from models_registry.tasks import validate_version

    validate_version.enqueue(version.pk)


def version_request_validation(*, version: ModelVersion) -> None:
    """Queue a (re-)validation, e.g. from the admin action.

    Refused while the version serves a station: validation replaces its
    serving artifacts, which the line is using.
    """
    serving = version.deployments.filter(is_active=True).select_related("station").first()
    if serving is not None:
        raise ValidationError(
            {
                "version": f"{version} is serving {serving.station.code}; deploy another version "
                "there before validating this one again."
            }
        )
    with transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk).update(
            status=VersionStatus.UPLOADED, status_reason=""
        )
        transaction.on_commit(lambda: enqueue_validation(version))


def version_labels_replace(*, version: ModelVersion, labels: Iterable[str]) -> ModelVersion:
    """Give a version new labels (in output order) and validate it again: no new upload.

    For a version made invalid by its labels (a wrong count, a wrong order).
    Refused while it serves, as any re-validation is.
    """
    cleaned = clean_labels(labels)
    with transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk).update(labels=cleaned)
        version_request_validation(version=version)  # refuses, and undoes the labels, if serving
    version.refresh_from_db()
    return version


def _plan_mapping(
    version: ModelVersion, mapping: Mapping[str, str | None]
) -> tuple[dict[str, LabelMapping], dict[str, DefectType | None], list[str]]:
    """Check a mapping change without writing: the rows, what each named label becomes,
    and which labels actually change."""
    rows = {row.label: row for row in version.mappings.all()}
    if not rows:
        raise ValidationError(
            {
                "mapping": f"{version} is {version.get_status_display().lower()} and has no "
                "labels to map yet; map them once validation has read them."
            }
        )
    not_codes = sorted(
        str(label)
        for label, code in mapping.items()
        if code is not None and not isinstance(code, str)
    )
    if not_codes:
        raise ValidationError(
            {"mapping": f"Give a defect type code or null for label(s) {', '.join(not_codes)}."}
        )
    unknown_labels = sorted(set(mapping) - set(rows))
    if unknown_labels:
        raise ValidationError(
            {"mapping": f"{version} has no label(s) {', '.join(unknown_labels)}."}
        )
    codes = {code for code in mapping.values() if code}
    defect_types = {d.code: d for d in DefectType.objects.filter(code__in=codes)}
    unknown_codes = sorted(codes - set(defect_types))
    if unknown_codes:
        raise ValidationError(
            {"mapping": f"Unknown defect type code(s): {', '.join(unknown_codes)}."}
        )
    wanted = {label: defect_types[code] if code else None for label, code in mapping.items()}
    changed = [
        label
        for label, defect_type in wanted.items()
        if rows[label].defect_type_id != (defect_type.pk if defect_type else None)
        or rows[label].no_defect != (defect_type is None)
    ]
    if changed:
        passing = [label for label, row in rows.items() if row.no_defect and label not in wanted]
        passing += [label for label, defect_type in wanted.items() if defect_type is None]
        slots = slots_served_by(version=version)
        if slots and not passing:
            raise ValidationError(
                {
                    "mapping": f"{version} serves {', '.join(slots)}; keep at least one label "
                    "meaning 'no defect', or no frame there could pass."
                }
            )
    return rows, wanted, changed


def label_mappings_check(*, version: ModelVersion, mapping: Mapping[str, str | None]) -> None:
    """Raise what label_mappings_update would refuse, writing nothing (for forms)."""
    _plan_mapping(version, mapping)


def label_mappings_update(
    *, version: ModelVersion, mapping: Mapping[str, str | None]
) -> list[LabelMapping]:
    """Map labels to defect type codes; ``None`` (or "") means 'no defect'.

    Labels not named keep their mapping. Unknown labels or defect codes are
    refused and nothing changes. A deployed version's new mapping serves its
    stations' next frames, so it must keep a 'no defect' label.
    """
    rows, wanted, changed = _plan_mapping(version, mapping)
    if changed:
        with transaction.atomic():
            for label in changed:
                row = rows[label]
                row.defect_type = wanted[label]
                row.no_defect = wanted[label] is None
                row.save(update_fields=["defect_type", "no_defect"])
            mapping_revision_bump(version=version)
    return sorted(rows.values(), key=lambda row: row.index)


class VersionServing(ValidationError):
    """The version serves a station now; its preprocessing changes only while it serves nowhere."""


PREPROCESSING_FIELDS = (
    "resize_mode",
    "value_scale",
    "color_mode",
    "resize_interpolation",
    "jpeg_draft",
)


def version_preprocessing_check(version: ModelVersion, changed_fields: Iterable[str]) -> None:
    """Refuse a preprocessing change on a version that serves a station.

    New preprocessing changes the verdicts of the stations it serves in ways
    only an evaluation shows, so it changes only while the version serves
    nowhere: deploy another version first, or upload a new one.
    """
    changed = [field for field in changed_fields if field in PREPROCESSING_FIELDS]
    slots = slots_served_by(version=version) if changed else []
    if slots:
        raise VersionServing(
            {
                changed[0]: f"{version} serves {', '.join(slots)}; deploy another version "
                "there before changing how it preprocesses frames, or upload a new version "
                "with this preprocessing."
            }
        )


def version_update(
    *,
    version: ModelVersion,
    notes: str | None = None,
    resize_mode: str | None = None,
    value_scale: str | None = None,
    color_mode: str | None = None,
    resize_interpolation: str | None = None,
    jpeg_draft: bool | None = None,
) -> ModelVersion:
    """Change a version's notes or its declared preprocessing (``None`` keeps a value).

    Notes change at any time; preprocessing only while the version serves
    nowhere (``version_preprocessing_check``, the one rule for admin and API).
    """
    preprocessing = {
        "resize_mode": (resize_mode, ResizeMode),
        "value_scale": (value_scale, ValueScale),
        "color_mode": (color_mode, ColorMode),
        "resize_interpolation": (resize_interpolation, ResizeInterpolation),
        "jpeg_draft": (None if jpeg_draft is None else bool(jpeg_draft), None),
    }
    changed_fields = []
    for field, (value, choices) in preprocessing.items():
        if value is None or value == getattr(version, field):
            continue
        if choices is not None:
            _check_choice(field, value, choices)
        changed_fields.append(field)
    version_preprocessing_check(version, changed_fields)
    for field in changed_fields:
        setattr(version, field, preprocessing[field][0])
    if notes is not None and notes != version.notes:
        version.notes = notes
        changed_fields.append("notes")
    if changed_fields:
        version.save(update_fields=changed_fields)
    return version


def version_change(
    *,
    version: ModelVersion,
    notes: str | None = None,
    resize_mode: str | None = None,
    value_scale: str | None = None,
    color_mode: str | None = None,
    resize_interpolation: str | None = None,
    jpeg_draft: bool | None = None,
) -> ModelVersion:
    """Change a version's notes, or its declared preprocessing while it serves nowhere
    (admin and API).

    A preprocessing change on a deployed version is refused with VersionServing
    (``version_change_check``). Validation checked TFLite against the
    SavedModel on inputs of the declared value scale, so a new scale validates
    the version again (unless it is still queued).
    """
    with transaction.atomic():
        locked = (
            ModelVersion.objects.select_for_update(no_key=True)
            .select_related("model")
            .get(pk=version.pk)
        )
        version_change_check(
            locked,
            resize_mode=resize_mode,
            value_scale=value_scale,
            color_mode=color_mode,
            resize_interpolation=resize_interpolation,
            jpeg_draft=jpeg_draft,
        )
        scale_before = locked.value_scale
        version_update(
            version=locked,
            notes=notes,
            resize_mode=resize_mode,
            value_scale=value_scale,
            color_mode=color_mode,
            resize_interpolation=resize_interpolation,
            jpeg_draft=jpeg_draft,
        )
        if locked.value_scale != scale_before and locked.status != VersionStatus.UPLOADED:
            version_request_validation(version=locked)
    locked.refresh_from_db()
    return locked


def version_change_check(version: ModelVersion, **preprocessing: str | bool | None) -> None:
    """Refuse new preprocessing (``None`` keeps a value) that ``version_change`` would refuse:
    any change while the version serves, or a choice its signature rules out."""
    changed = [
        field
        for field, value in preprocessing.items()
        if value is not None and value != getattr(version, field)
    ]
    version_preprocessing_check(version, changed)
    _check_signature_choices(
        version,
        value_scale=preprocessing.get("value_scale"),
        color_mode=preprocessing.get("color_mode"),
    )


def _check_signature_choices(
    version: ModelVersion, *, value_scale: str | None, color_mode: str | None
) -> None:
    if value_scale not in (None, ValueScale.RAW) and version.input_dtype == "uint8":
        raise ValidationError(
            {"value_scale": f"{version} takes uint8 pixels, so its values stay 0..255 (0_255)."}
        )
    if color_mode == ColorMode.RGB and version.input_channels == 1:
        raise ValidationError(
            {"color_mode": f"{version} takes one channel, so its frames stay greyscale."}
        )


def _check_choice(field: str, value: str, choices: type[models.TextChoices]) -> None:
    if value not in choices.values:
        raise ValidationError({field: f"'{value}' is not one of {', '.join(choices.values)}."})


def _check_deployable(*, version: ModelVersion, station: Station, product: Product | None) -> None:
    if version.status != VersionStatus.READY:
        raise ValidationError(
            {
                "version": f"{version} is {version.get_status_display().lower()}; only ready "
                "versions can be deployed."
            }
        )
    mappings = list(version.mappings.all())
    unmapped = [m.label for m in mappings if not m.is_mapped]
    if not mappings or unmapped:
        raise ValidationError(
            {"version": f"Map every label of {version} first; unmapped: {', '.join(unmapped)}."}
        )
    if not any(m.no_defect for m in mappings):
        raise ValidationError(
            {"version": f"No label of {version} means 'no defect', so no frame could pass."}
        )
    if product is not None and not product.lines.filter(pk=station.line_id).exists():
        raise ValidationError(
            {"product": f"{product.sku} does not run on line {station.line.code}."}
        )


def _check_rate(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValidationError({name: "Give a number between 0 and 1."}) from None
    if not 0.0 <= value <= 1.0:
        raise ValidationError({name: f"{value:g} is outside 0..1."})
    return value


def _lock_station(station_id: int) -> None:
    """Serialise deployment changes of a station (first in the lock order; see the top)."""
    Station.objects.select_for_update(no_key=True).filter(pk=station_id).first()


def _switch_to(
    *,
    station: Station,
    product: Product | None,
    target: Deployment,
    action: DeploymentAction,
    by: AbstractBaseUser | None,
) -> Deployment:
    """Make ``target`` the active deployment of its slot, inside the caller's transaction."""
    current = (
        Deployment.objects.select_for_update(no_key=True)
        .filter(station=station, product=product, is_active=True)
        .exclude(pk=target.pk)
        .first()
    )
    now = timezone.now()
    if current is not None:
        current.is_active = False
        current.deactivated_at = now
        current.save(update_fields=["is_active", "deactivated_at"])
    target.is_active = True
    target.activated_at = now
    target.activated_by = by
    target.deactivated_at = None
    target.save(update_fields=["is_active", "activated_at", "activated_by", "deactivated_at"])
    DeploymentHistory.objects.create(
        station=station,
        product=product,
        action=action,
        from_deployment=current,
        to_deployment=target,
        by=by,
    )
    _deployment_to_outbox(station, product, action, target)
    transaction.on_commit(
        lambda: deployment_changed.send(sender=Deployment, station=station, deployment=target)
    )
    return target


def _deployment_to_outbox(
    station: Station, product: Product | None, action: str, deployment: Deployment | None
) -> None:
    """What the station serves now, for the plant's systems (in the switch's transaction)."""
    version = deployment.version if deployment is not None else None
    outbox_add(
        DEPLOYMENT_CHANGED,
        scope=station_scope(station),
        data={
            "action": str(action),
            "product": product.sku if product is not None else None,
            "deployment": deployment.pk if deployment is not None else None,
            "model_version": (
                {"model": version.model.name, "version": version.number} if version else None
            ),
        },
    )


def deployment_activate(
    *,
    station: Station,
    version: ModelVersion,
    product: Product | None = None,
    confidence_threshold: float = 0.8,
    defect_thresholds: Mapping[DefectType, float] | None = None,
    always_review: Iterable[DefectType] = (),
    pass_review_rate: float = 0.0,
    edge_recheck_rate: float = 0.0,
    low_margin_review: float = 0.0,
    low_margin_daily_cap: int = 50,
    by: AbstractBaseUser | None = None,
) -> Deployment:
    """Deploy a ready, fully mapped version to a station (or one product there).

    Takes effect on the station's next frame in every worker process.
    ``low_margin_review`` above 0 sends passes the model was unsure of to
    review, at most ``low_margin_daily_cap`` per station and day.
    """
    _check_deployable(version=version, station=station, product=product)
    confidence_threshold = _check_rate("confidence_threshold", confidence_threshold)
    pass_review_rate = _check_rate("pass_review_rate", pass_review_rate)
    edge_recheck_rate = _check_rate("edge_recheck_rate", edge_recheck_rate)
    low_margin_review = _check_rate("low_margin_review", low_margin_review)
    if isinstance(low_margin_daily_cap, bool) or not isinstance(low_margin_daily_cap, int):
        raise ValidationError({"low_margin_daily_cap": "Give a whole number of frames."})
    if low_margin_daily_cap < 0:
        raise ValidationError({"low_margin_daily_cap": "Give 0 or more frames per day."})
    thresholds = {
        defect_type: _check_rate(f"defect_thresholds.{defect_type.code}", value)
        for defect_type, value in (defect_thresholds or {}).items()
    }
    with transaction.atomic():
        _lock_station(station.pk)
        deployment = Deployment.objects.create(
            station=station,
            product=product,
            version=version,
            confidence_threshold=confidence_threshold,
            pass_review_rate=pass_review_rate,
            edge_recheck_rate=edge_recheck_rate,
            low_margin_review=low_margin_review,
            low_margin_daily_cap=low_margin_daily_cap,
        )
        DefectThreshold.objects.bulk_create(
            DefectThreshold(deployment=deployment, defect_type=defect_type, threshold=value)
            for defect_type, value in thresholds.items()
        )
        deployment.always_review.set(list(always_review))
        return _switch_to(
            station=station,
            product=product,
            target=deployment,
            action=DeploymentAction.ACTIVATE,
            by=by,
        )


def deployment_reactivate(
    *, deployment: Deployment, by: AbstractBaseUser | None = None
) -> Deployment:
    """Serve an earlier deployment again, with the thresholds it had."""
    _check_deployable(
        version=deployment.version, station=deployment.station, product=deployment.product
    )
    with transaction.atomic():
        _lock_station(deployment.station_id)
        deployment.refresh_from_db(fields=["is_active"])
        if deployment.is_active:
            return deployment
        return _switch_to(
            station=deployment.station,
            product=deployment.product,
            target=deployment,
            action=DeploymentAction.ACTIVATE,
            by=by,
        )


def deployment_rollback(
    *, station: Station, product: Product | None = None, by: AbstractBaseUser | None = None
) -> Deployment:
    """Re-activate the deployment that served before the current one."""
    with transaction.atomic():
        _lock_station(station.pk)
        current = Deployment.objects.filter(
            station=station, product=product, is_active=True
        ).first()
        if current is None:
            raise ValidationError(
                {"station": f"Nothing is deployed to {station.code}; nothing to roll back."}
            )
        target = rollback_target(current=current)
        if target is None:
            raise ValidationError(
                {
                    "station": (
                        f"{current} is the first deployment of {station.code}; "
                        "nothing to roll back to."
                    )
                }
            )
        _check_deployable(version=target.version, station=station, product=product)
        return _switch_to(
            station=station, product=product, target=target, action=DeploymentAction.ROLLBACK, by=by
        )


def deployment_deactivate(*, deployment: Deployment, by: AbstractBaseUser | None = None) -> None:
    """Stop serving a slot: its frames are refused until something is activated again."""
    with transaction.atomic():
        _lock_station(deployment.station_id)
        locked = Deployment.objects.select_for_update(no_key=True).get(pk=deployment.pk)
        if not locked.is_active:
            return
        locked.is_active = False
        locked.deactivated_at = timezone.now()
        locked.save(update_fields=["is_active", "deactivated_at"])
        DeploymentHistory.objects.create(
            station=locked.station,
            product=locked.product,
            action=DeploymentAction.DEACTIVATE,
            from_deployment=locked,
            to_deployment=None,
            by=by,
        )
        _deployment_to_outbox(locked.station, locked.product, DeploymentAction.DEACTIVATE, None)
        transaction.on_commit(
            lambda: deployment_changed.send(
                sender=Deployment, station=locked.station, deployment=None
            )
        )
