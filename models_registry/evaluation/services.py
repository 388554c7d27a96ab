"""Starting evaluations, and switching a version to the fast decode path on evidence."""

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from common.jobs import job_enqueue
from common.models import JobState
from models_registry.choices import VersionStatus
from models_registry.datasets.models import DatasetLabel, DatasetSnapshot
from models_registry.decision import LineRules
from models_registry.evaluation.kinds import EVALUATION
from models_registry.evaluation.models import Evaluation, EvaluationSplit
from models_registry.evaluation.plan import LabelPlan, label_plan, split_items
from models_registry.models import Deployment, ModelVersion
from models_registry.services import version_update

# The share of images on which the fast JPEG path must give the exact path's label.
FAST_PATH_MIN_AGREEMENT = 0.999
DEFAULT_TARGET_ESCAPE_RATE = 0.01


def _check_ready(version: ModelVersion, field: str) -> None:
    if version.status != VersionStatus.READY:
        reason = f" ({version.status_reason})" if version.status_reason else ""
        raise ValidationError(
            {
                field: f"{version} is {version.get_status_display().lower()}{reason}; only "
                "ready versions can be evaluated."
            }
        )


def line_thresholds(version: ModelVersion, deployment: Deployment | None) -> dict:
    """The thresholds the line simulation uses: ``deployment``'s, else the version's active
    deployment's, else the defaults a new deployment gets (both versions get the same)."""
    deployment = deployment or (
        version.deployments.filter(is_active=True).order_by("-activated_at").first()
    )
    if deployment is None:
        return {
            "deployment": None,
            "confidence_threshold": 0.8,
            "defect_thresholds": {},
            "always_review": [],
            "pass_review_rate": 0.0,
        }
    return {
        "deployment": deployment.pk,
        "confidence_threshold": deployment.confidence_threshold,
        "defect_thresholds": {
            t.defect_type.code: t.threshold
            for t in deployment.defect_thresholds.select_related("defect_type")
        },
        "always_review": sorted(d.code for d in deployment.always_review.all()),
        "pass_review_rate": deployment.pass_review_rate,
    }


def rules_from_options(data: dict, meanings) -> LineRules:
    return LineRules(
        meanings=tuple(meanings),
        confidence_threshold=data["confidence_threshold"],
        defect_thresholds=data["defect_thresholds"],
        always_review=frozenset(data["always_review"]),
        pass_review_rate=data.get("pass_review_rate", 0.0),
    )


def _check_request(
    *, versions: list[ModelVersion], snapshot: DatasetSnapshot, split: str
) -> tuple[int, LabelPlan]:
    """How many images the evaluation covers and how their labels compare; raises what
    would make it fail before it starts."""
    if split not in EvaluationSplit.values:
        raise ValidationError({"split": f"'{split}' is not one of {', '.join(EvaluationSplit)}."})
    for version, field in zip(versions, ("version", "challenger"), strict=False):
        _check_ready(version, field)
    if len(versions) == 2 and versions[0].pk == versions[1].pk:
        raise ValidationError({"challenger": "Choose another version as the challenger."})
    items = split_items(snapshot=snapshot, split=split)
    count = items.count()
    if count == 0:
        raise ValidationError(
            {"split": f"{snapshot} has no {split} images; split the dataset or choose another."}
        )
    labels = list(
        DatasetLabel.objects.filter(pk__in=items.values("label_id")).select_related("defect_type")
    )
    return count, label_plan(versions=versions, labels=labels)


def evaluation_start(
    *,
    version: ModelVersion,
    snapshot: DatasetSnapshot,
    split: str = EvaluationSplit.TEST,
    challenger: ModelVersion | None = None,
    deployment: Deployment | None = None,
    target_escape_rate: float = DEFAULT_TARGET_ESCAPE_RATE,
    check_fast_path: bool = False,
    requested_by: AbstractBaseUser | None = None,
) -> Evaluation:
    """Check everything an evaluation needs, then queue it as a job on its own queue.

    Refused before any job exists: a version (or challenger) that is not
    ready, a split with no images, labels that cannot be placed in one set
    of classes.
    """
    if not 0.0 <= target_escape_rate <= 1.0:
        raise ValidationError({"target_escape_rate": "Give a share between 0 and 1."})
    versions = [version] if challenger is None else [version, challenger]
    count, plan = _check_request(versions=versions, snapshot=snapshot, split=split)
    options = {
        "target_escape_rate": target_escape_rate,
        "check_fast_path": bool(check_fast_path) and not version.jpeg_draft,
        "thresholds": line_thresholds(version, deployment),
        "truth_codes": plan.truth_codes,
        "output_codes": {str(pk): list(c) for pk, c in (plan.output_codes or {}).items()},
        "outputs": {str(pk): list(c) for pk, c in plan.outputs.items()},
        "truth": {str(pk): c for pk, c in plan.truth.items()},
    }
    with transaction.atomic():
        evaluation = Evaluation.objects.create(
            version=version,
            challenger=challenger,
            snapshot=snapshot,
            split=split,
            label_space=plan.space,
            classes=list(plan.classes),
            options=options,
            image_count=count,
            created_by=requested_by if requested_by and requested_by.is_authenticated else None,
        )
        evaluation.job = job_enqueue(
            kind=EVALUATION,
            target=evaluation,
            requested_by=requested_by,
            payload={"evaluation": evaluation.pk},
        )
        evaluation.save(update_fields=["job"])
    return evaluation


def version_enable_fast_path(
    *, version: ModelVersion, evaluation: Evaluation | None = None
) -> ModelVersion:
    """Allow reduced-scale JPEG decoding for ``version``.

    Without an evaluation this is the engineer's own decision (a model
    trained on frames decoded that way). With one, it must be a finished
    evaluation of this version whose fast-path check agreed with the exact
    path on at least 99.9 % of its images. Refused while the version serves.
    """
    if evaluation is not None:
        if evaluation.version_id != version.pk:
            raise ValidationError({"evaluation": f"That evaluation is not of {version}."})
        if evaluation.state != JobState.DONE or not evaluation.fast_path:
            raise ValidationError(
                {
                    "evaluation": "That evaluation has no finished fast-path check; run one with "
                    "check_fast_path."
                }
            )
        agreement = evaluation.fast_path["agreement"]
        if agreement < FAST_PATH_MIN_AGREEMENT:
            raise ValidationError(
                {
                    "evaluation": f"The fast path gave the exact path's label on "
                    f"{agreement:.2%} of the images; at least "
                    f"{FAST_PATH_MIN_AGREEMENT:.1%} is needed."
                }
            )
    return version_update(version=version, jpeg_draft=True)
