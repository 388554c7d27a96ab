"""Writes of the inspection app: frames in, inspectors' decisions on them."""

import datetime as dt
import hashlib
import io
import random
import time
import uuid
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone
from PIL import Image

from common.files import delete_on_error
from common.outbox import INSPECTION_JUDGED, INSPECTION_VERIFIED, outbox_add
from common.preprocessing import Frame, FrameError, open_frame
from inspection import events
from inspection.choices import Decision, ReviewReason, ReviewStatus, Source, Verdict
from inspection.models import Inspection, Verification
from inspection.runtime import Prediction, model_cache
from inspection.selectors import (
    Serving,
    inspection_for_key,
    latest_verification,
    line_facts,
    serving_for,
)
from inspection.verdict import DecisionRules, Judgement, judge
from masterdata.models import DefectType, Product, Station
from masterdata.selectors import PlantTime, plant_time, station_scope
from models_registry.models import ModelVersion

MAX_CLOCK_SKEW = dt.timedelta(minutes=5)
# No camera of a line took a frame before this: an earlier capture time is a
# device clock that was never set (1970, year 1), refused rather than filed there.
EARLIEST_CAPTURE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


class FrameRefused(ValidationError):
    """A frame the station may not send now; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, *, status: int):
        super().__init__(message)
        self.status = status


class FrameAlreadyStored(Exception):
    """A retry of a frame stored earlier under the same idempotency key: answer it again."""

    def __init__(self, inspection: Inspection):
        super().__init__(f"Frame #{inspection.pk} was already stored under this key.")
        self.inspection = inspection


@dataclass(frozen=True)
class EdgeResult:
    """What a device that ran the model itself says about the frame."""

    model: str
    version: int
    label: str
    confidence: float
    top_k: tuple[tuple[str, float], ...] = ()


def inspection_create(
    *,
    station: Station,
    image: bytes,
    product: Product | None = None,
    serial: str = "",
    lot: str = "",
    captured_at: dt.datetime | None = None,
    edge: EdgeResult | None = None,
    idempotency_key: str = "",
    started: float | None = None,
) -> Inspection:
    """Judge one frame, store it with its verdict and tell the line's dashboards.

    The row and the image are written together: if either fails neither is
    left. The event goes out after commit. ``started`` (a perf_counter
    reading) is when the request reached the server, for ``latency_ms``.
    A frame whose ``idempotency_key`` the station already used raises
    ``FrameAlreadyStored`` with the stored row, however many workers race.
    """
    started = started if started is not None else time.perf_counter()
    _check_station_active(station)
    if idempotency_key:
        _answer_replay(station, idempotency_key, hashlib.sha256(image).hexdigest())
    captured_at = _checked_capture_time(captured_at)
    facts = line_facts(station=station)
    product = _product_for(station, product, facts.products)
    serving = _serving_or_refuse(station, product)
    frame = _decoded(image)
    if edge is None:
        call = _server_call(serving, frame, station)
    else:
        _check_pixels(image)  # the server path decodes every pixel; so must this one
        call = _edge_call(edge, serving, frame, station)
    local = plant_time(station.line.plant, captured_at, facts.shifts)
    name = _stored(_frame_path(station, local, frame), image)
    inspection = _inspection_row(
        station=station,
        product=product,
        serving=serving,
        call=call,
        image=image,
        frame=frame,
        name=name,
        local=local,
        captured_at=captured_at,
        serial=serial,
        lot=lot,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
        idempotency_key=idempotency_key,
    )
    _insert(inspection, name)
    transaction.on_commit(lambda: events.inspection_created(inspection))
    return inspection


def _insert(inspection: Inspection, name: str) -> None:
    """INSERT the row of the image stored under ``name`` with its outbox message; on any
    failure the file goes.

    The row and its outbox message are one transaction (a savepoint inside a
    caller's, so a lost key race does not break it): the plant's systems hear
    of exactly the frames that were stored. Losing the race for an
    idempotency key answers the winner's row.
    """
    try:
        with delete_on_error(default_storage, name), transaction.atomic():
            inspection.save(force_insert=True)
            outbox_add(
                INSPECTION_JUDGED,
                scope=station_scope(inspection.station),
                data=events.inspection_payload(inspection),
            )
    except IntegrityError:
        if inspection.idempotency_key:
            _answer_replay(inspection.station, inspection.idempotency_key, inspection.image_sha256)
        raise


class StorageRefused(FrameRefused):
    """The storage would not take the frame's bytes (full, read-only, bucket gone): 503."""

    def __init__(self, message: str):
        super().__init__(message, status=503)


def _stored(path: str, image: bytes) -> str:
    """Save the frame's bytes; a storage that refuses them refuses the frame, nothing left.

    A local volume raises OSError (ENOSPC, EROFS, EACCES), S3 botocore's errors; a
    partly written file is deleted, and no row is written without its bytes.
    """
    try:
        return default_storage.save(path, ContentFile(image))
    except Exception as exc:
        if not _storage_error(exc):
            raise
        with suppress(Exception):  # the storage is failing already; the refusal says so
            default_storage.delete(path)  # a local file cut short by a full volume
        detail = getattr(exc, "strerror", None) or str(exc)
        raise StorageRefused(
            f"Storage full / unavailable: {detail}. The frame was not stored; retry later "
            "with the same idempotency key (an administrator should free or add space)."
        ) from exc


def _storage_error(exc: Exception) -> bool:
    """Whether ``exc`` is the storage refusing a write (not a bug in the caller)."""
    if isinstance(exc, OSError):
        return True
    module = type(exc).__module__
    return module.startswith(("botocore.", "boto3.", "s3transfer."))


def _answer_replay(station: Station, key: str, sha256: str) -> None:
    """Answer a retry with the frame stored under ``key``; a key reused for other bytes is
    refused. Returns only when the station has no frame under ``key``."""
    stored = inspection_for_key(station=station, key=key)
    if stored is None:
        return
    if stored.image_sha256 != sha256:
        raise FrameRefused(
            f"Idempotency key '{key}' was already used by station {station.code} for "
            f"another image (frame #{stored.pk}); send a new key with every new frame.",
            status=422,
        )
    raise FrameAlreadyStored(stored)


@dataclass(frozen=True)
class _Call:
    """Who judged a frame (``source``) and how; ``recheck`` holds an edge re-check's fields."""

    judgement: Judgement
    source: str
    recheck: dict[str, object] = field(default_factory=dict)


def _check_station_active(station: Station) -> None:
    if not station.active:
        raise FrameRefused(f"Station {station.code} is inactive.", status=403)


def _checked_capture_time(captured_at: dt.datetime | None) -> dt.datetime:
    """When the frame was taken: as the device says, unless its clock is off (future, unset)."""
    now = timezone.now()
    if captured_at is None:
        return now
    if captured_at < EARLIEST_CAPTURE:
        raise ValidationError(
            {
                "captured_at": f"{captured_at.isoformat()} is before "
                f"{EARLIEST_CAPTURE:%Y-%m-%d}; check the device clock."
            }
        )
    if captured_at > now + MAX_CLOCK_SKEW:
        raise ValidationError(
            {"captured_at": f"{captured_at.isoformat()} is in the future; check the device clock."}
        )
    return captured_at


def _product_for(
    station: Station, product: Product | None, products: Sequence[Product]
) -> Product | None:
    """The product of a frame: as given (it must run on the line), or the line's only one."""
    if product is not None:
        known = any(p.pk == product.pk for p in products)
        if not known and not product.lines.filter(pk=station.line_id).exists():
            raise ValidationError(
                {"product": f"{product.sku} does not run on line {station.line.code}."}
            )
        return product
    if len(products) > 1:
        skus = ", ".join(p.sku for p in products)
        raise ValidationError(
            {"product": f"Line {station.line.code} runs several products ({skus}); say which one."}
        )
    return products[0] if products else None


def _serving_or_refuse(station: Station, product: Product | None) -> Serving:
    serving = serving_for(station=station, product=product)
    if serving is None:
        scope = f" for {product.sku}" if product else ""
        raise FrameRefused(
            f"No model is deployed to station {station.code}{scope}; "
            "ask a quality engineer to deploy one.",
            status=409,
        )
    return serving


def _decoded(image: bytes) -> Frame:
    try:
        return open_frame(image, max_pixels=settings.LINESIGHT["MAX_FRAME_PIXELS"])
    except FrameError as exc:
        raise ValidationError({"image": str(exc)}) from None


def _check_pixels(image: bytes) -> None:
    """Decode the whole image, cheaply (a JPEG at 1/8 scale), so a damaged one is refused."""
    try:
        with Image.open(io.BytesIO(image)) as check:
            if check.format == "JPEG":
                check.draft(check.mode, (max(1, check.width // 8), max(1, check.height // 8)))
            check.load()
    except (OSError, ValueError, SyntaxError) as exc:
        raise ValidationError({"image": f"The image is damaged: {exc}."}) from None


def _low_margin_room(station: Station, cap: int):
    """Whether the station's daily cap of low-margin reviews has room (its plant's day);
    asked only for a pass the model was unsure of."""

    def room() -> bool:
        today = timezone.now().astimezone(station.line.plant.tzinfo).date()
        sent = Inspection.objects.filter(
            station=station, local_date=today, review_reason=ReviewReason.LOW_MARGIN
        )
        return sent.count() < cap

    return room


def _server_call(serving: Serving, frame: Frame, station: Station) -> _Call:
    scores = _classify(serving.version, frame).scores
    room = _low_margin_room(station, serving.rules.low_margin_daily_cap)
    judgement = judge(scores, serving.rules, sample=random.random(), low_margin_room=room)  # noqa: S311
    return _Call(judgement=judgement, source=Source.SERVER)


def _edge_call(edge: EdgeResult, serving: Serving, frame: Frame, station: Station) -> _Call:
    """The device's own result, re-checked on the server for a share of frames."""
    rules = serving.rules
    scores = _edge_scores(edge, rules, serving.version)
    room = _low_margin_room(station, rules.low_margin_daily_cap)
    judgement = judge(scores, rules, sample=random.random(), low_margin_room=room)  # noqa: S311
    if random.random() < rules.edge_recheck_rate:  # noqa: S311
        return _recheck(serving.version, frame, rules, judgement)
    return _Call(judgement=judgement, source=Source.EDGE)


def _edge_scores(edge: EdgeResult, rules: DecisionRules, version: ModelVersion) -> list[float]:
    if (edge.model, edge.version) != (version.model.name, version.number):
        raise FrameRefused(
            f"Station runs {version.model.name}:{version.number}, not {edge.model}:{edge.version}; "
            "download the current model from the station's manifest.",
            status=409,
        )
    scores = [0.0] * len(rules.labels)
    for label, confidence in ((edge.label, edge.confidence), *edge.top_k):
        index = rules.index_of(label)
        if index is None:
            raise ValidationError(
                {"label": f"{version.model.name}:{version.number} has no label '{label}'."}
            )
        if not 0.0 <= confidence <= 1.0:
            raise ValidationError({"confidence": f"{confidence} for '{label}' is outside 0..1."})
        scores[index] = max(scores[index], float(confidence))
    if scores[rules.index_of(edge.label)] < max(scores):
        raise ValidationError({"label": f"'{edge.label}' is not the top label of the given top_k."})
    return scores


def _recheck(
    version: ModelVersion, frame: Frame, rules: DecisionRules, edge_judgement: Judgement
) -> _Call:
    """Classify an edge frame on the server too; a different top label sends it to review."""
    server = judge(_classify(version, frame).scores, rules, sample=1.0)
    disagree = server.label != edge_judgement.label
    fields = {
        "edge_rechecked": True,
        "server_label": server.label,
        "server_confidence": server.confidence,
        "edge_disagreement": disagree,
    }
    if not disagree:
        return _Call(judgement=edge_judgement, source=Source.EDGE, recheck=fields)
    judgement = replace(
        edge_judgement,
        verdict=Verdict.REVIEW,
        review_status=ReviewStatus.PENDING,
        review_reason=ReviewReason.EDGE_DISAGREEMENT,
    )
    return _Call(judgement=judgement, source=Source.EDGE, recheck=fields)


def _classify(version: ModelVersion, frame: Frame) -> Prediction:
    try:
        return model_cache().get(version).classify(frame)
    except FrameError as exc:
        raise ValidationError({"image": str(exc)}) from None


def _frame_path(station: Station, local: PlantTime, frame: Frame) -> str:
    """Where the image is stored: by the plant's local day and the station, never reused."""
    return f"frames/{local.local_date:%Y/%m/%d}/{station.code}/{uuid.uuid4().hex}.{frame.extension}"


def _inspection_row(
    *,
    station: Station,
    product: Product | None,
    serving: Serving,
    call: _Call,
    image: bytes,
    frame: Frame,
    name: str,
    local: PlantTime,
    captured_at: dt.datetime,
    serial: str,
    lot: str,
    latency_ms: float,
    idempotency_key: str,
) -> Inspection:
    """The unsaved row of a judged frame whose image is stored under ``name``."""
    judgement = call.judgement
    defect_type = serving.defect_types.get(judgement.defect_type_id)
    return Inspection(
        station=station,
        line=station.line,
        product=product,
        deployment=serving.deployment,
        model_version=serving.version,
        source=call.source,
        verdict=judgement.verdict,
        label=judgement.label,
        defect_type=defect_type,
        confidence=judgement.confidence,
        top_k=judgement.top_k,
        review_status=judgement.review_status,
        review_reason=judgement.review_reason,
        final_defect_type=defect_type,
        final_is_defect=judgement.defect_type_id is not None,
        image=name,
        image_bytes=len(image),
        image_sha256=hashlib.sha256(image).hexdigest(),
        image_content_type=frame.content_type,
        image_width=frame.width,
        image_height=frame.height,
        serial=serial,
        lot=lot,
        captured_at=captured_at,
        local_date=local.local_date,
        shift=local.shift,
        shift_date=local.shift_date,
        latency_ms=latency_ms,
        idempotency_key=idempotency_key,
        **call.recheck,
    )


class VerificationConflict(ValidationError):
    """Someone else decided the frame since the inspector loaded it."""


def verification_record(
    *,
    inspection: Inspection,
    inspector: AbstractBaseUser,
    decision: str,
    defect_type: DefectType | None = None,
    comment: str = "",
    time_spent_ms: int | None = None,
    supersedes: Verification | None = None,
) -> Verification:
    """Record an inspector's decision on a frame and make it the frame's final word.

    ``confirm`` keeps the model's call, ``reject`` says there is no defect,
    ``correct`` names the right defect type. A frame already verified is only
    decided again when the caller names the verification it replaces
    (``supersedes``); otherwise the late decision is refused with who decided
    it, so nobody overwrites a colleague silently. Earlier records are never
    edited.
    """
    _check_decision(decision, defect_type)
    with transaction.atomic():
        locked = Inspection.objects.select_for_update(no_key=True).get(pk=inspection.pk)
        latest = latest_verification(inspection=locked)
        if latest is not None and (supersedes is None or supersedes.pk != latest.pk):
            raise VerificationConflict(
                f"Frame #{locked.pk} was already verified by {latest.inspector.get_username()} "
                f"at {timezone.localtime(latest.created_at):%H:%M:%S} "
                f"({latest.get_decision_display()}). Reload it to change that decision."
            )
        verification = Verification.objects.create(
            inspection=locked,
            inspector=inspector,
            decision=decision,
            defect_type=_final_defect_type(locked, decision, defect_type),
            comment=comment,
            time_spent_ms=time_spent_ms,
        )
        _mark_verified(locked, verification)
        _verified_to_outbox(verification)
        transaction.on_commit(lambda: events.inspection_verified(verification))
    return verification


def _verified_to_outbox(verification: Verification) -> None:
    inspection = _with_event_relations(verification.inspection_id)
    outbox_add(
        INSPECTION_VERIFIED,
        scope=station_scope(inspection.station),
        data={
            "inspection": events.inspection_payload(inspection),
            "verification": events.verification_payload(verification),
        },
    )


def _check_decision(decision: str, defect_type: DefectType | None) -> None:
    if decision not in Decision.values:
        raise ValidationError(
            {"decision": f"'{decision}' is not one of {', '.join(Decision.values)}."}
        )
    if decision == Decision.CORRECT and defect_type is None:
        raise ValidationError({"defect_type": "Name the defect type when correcting the model."})
    if decision != Decision.CORRECT and defect_type is not None:
        raise ValidationError({"defect_type": "Only a correction names a defect type."})


def _final_defect_type(
    inspection: Inspection, decision: str, defect_type: DefectType | None
) -> DefectType | None:
    """The frame's defect type after the decision: the model's, none, or the correction."""
    if decision == Decision.CONFIRM:
        return inspection.defect_type
    if decision == Decision.REJECT:
        return None
    return defect_type


def _mark_verified(inspection: Inspection, verification: Verification) -> None:
    """Make ``verification`` the frame's final word and hand the frame back from any claim."""
    inspection.review_status = ReviewStatus.VERIFIED
    inspection.final_defect_type = verification.defect_type
    inspection.final_is_defect = verification.defect_type is not None
    inspection.verified_at = verification.created_at
    inspection.claimed_by = None
    inspection.claimed_until = None
    inspection.save(
        update_fields=[
            "review_status",
            "final_defect_type",
            "final_is_defect",
            "verified_at",
            "claimed_by",
            "claimed_until",
        ]
    )


# --- Review queue: claims, decisions, undo ------------------------------------
# An inspector who opens a frame claims it for a short while, so two inspectors
# never decide the same frame unknowingly; the claim ends with the decision, on
# skip, or by itself. Undo never edits: it hands the frame back to the same
# inspector, whose next decision supersedes the earlier one.


class ReviewClaimHeld(ValidationError):
    """Another inspector is looking at the frame right now."""


def _claim_held_by_other(
    inspection: Inspection, inspector: AbstractBaseUser, now: dt.datetime
) -> bool:
    return (
        inspection.claimed_by_id is not None
        and inspection.claimed_by_id != inspector.pk
        and inspection.claimed_until is not None
        and inspection.claimed_until > now
    )


def _claim_held_message(inspection: Inspection) -> str:
    return (
        f"Frame #{inspection.pk} is being reviewed by {inspection.claimed_by.get_username()} "
        f"(until {timezone.localtime(inspection.claimed_until):%H:%M:%S})."
    )


def review_claim(*, inspection: Inspection, inspector: AbstractBaseUser) -> Inspection:
    """Claim a frame of the queue for ``REVIEW_CLAIM_SECONDS`` (renewing one's own claim).

    Refused when another inspector holds a live claim, or when the frame was
    decided meanwhile: both say who, so the page can tell the inspector.
    """
    seconds = settings.LINESIGHT["REVIEW_CLAIM_SECONDS"]
    with transaction.atomic():
        locked = Inspection.objects.select_for_update(no_key=True).get(pk=inspection.pk)
        now = timezone.now()
        if locked.review_status != ReviewStatus.PENDING:
            latest = latest_verification(inspection=locked)
            who = f" by {latest.inspector.get_username()}" if latest else ""
            raise VerificationConflict(
                f"Frame #{locked.pk} does not wait for review any more (already verified{who})."
            )
        if _claim_held_by_other(locked, inspector, now):
            raise ReviewClaimHeld(_claim_held_message(locked))
        locked.claimed_by = inspector
        locked.claimed_until = now + dt.timedelta(seconds=seconds)
        locked.save(update_fields=["claimed_by", "claimed_until"])
        claimed = _with_event_relations(locked.pk)
        transaction.on_commit(lambda: events.review_claimed(claimed))
    return claimed


def review_release(*, inspection: Inspection, inspector: AbstractBaseUser) -> None:
    """Give a claimed frame back to the queue (skip, or the page closed). Others' claims stay."""
    with transaction.atomic():
        locked = Inspection.objects.select_for_update(no_key=True).get(pk=inspection.pk)
        if locked.claimed_by_id != inspector.pk:
            return
        locked.claimed_by = None
        locked.claimed_until = None
        locked.save(update_fields=["claimed_by", "claimed_until"])
        if locked.review_status == ReviewStatus.PENDING:
            released = _with_event_relations(locked.pk)
            transaction.on_commit(lambda: events.review_released(released, released_by=inspector))


def review_decide(
    *,
    inspection: Inspection,
    inspector: AbstractBaseUser,
    decision: str,
    defect_type: DefectType | None = None,
    comment: str = "",
    time_spent_ms: int | None = None,
    supersedes: Verification | None = None,
) -> Verification:
    """An inspector's decision from the queue or the API: ``verification_record`` plus claims.

    A frame another inspector has claimed is refused with their name; the
    other rules (late decisions, supersedes) are ``verification_record``'s.
    """
    with transaction.atomic():
        locked = Inspection.objects.select_for_update(no_key=True).get(pk=inspection.pk)
        if _claim_held_by_other(locked, inspector, timezone.now()):
            raise ReviewClaimHeld(_claim_held_message(locked))
        return verification_record(
            inspection=locked,
            inspector=inspector,
            decision=decision,
            defect_type=defect_type,
            comment=comment,
            time_spent_ms=time_spent_ms,
            supersedes=supersedes,
        )


def review_undo(*, verification: Verification, inspector: AbstractBaseUser) -> Inspection:
    """Hand an inspector's latest decision on a frame back to them, to decide again.

    Nothing is edited: the frame is claimed by the inspector and their next
    decision names ``verification`` as the one it supersedes. Refused when it
    is not their decision or someone decided the frame since.
    """
    seconds = settings.LINESIGHT["REVIEW_CLAIM_SECONDS"]
    if verification.inspector_id != inspector.pk:
        raise ValidationError("Only the inspector who made a decision can undo it.")
    with transaction.atomic():
        locked = Inspection.objects.select_for_update(no_key=True).get(
            pk=verification.inspection_id
        )
        latest = latest_verification(inspection=locked)
        if latest is None or latest.pk != verification.pk:
            raise VerificationConflict(
                f"Frame #{locked.pk} was decided again by {latest.inspector.get_username()} "
                f"since your decision; reload it to see the latest."
            )
        now = timezone.now()
        if _claim_held_by_other(locked, inspector, now):
            raise ReviewClaimHeld(_claim_held_message(locked))
        locked.claimed_by = inspector
        locked.claimed_until = now + dt.timedelta(seconds=seconds)
        locked.save(update_fields=["claimed_by", "claimed_until"])
    return _with_event_relations(locked.pk)


def _with_event_relations(pk: int) -> Inspection:
    return Inspection.objects.select_related(
        "station__line__plant",
        "line",
        "product",
        "defect_type",
        "model_version__model",
        "claimed_by",
    ).get(pk=pk)
