"""The champion/challenger page of a training run: start a comparison with a station's
deployed version, read both comparisons side by side, deploy the challenger through the
ordinary activation form (history, rollback)."""

from dataclasses import dataclass, field

from django import forms
from django.urls import reverse

from common.models import Job, JobState
from masterdata.models import Station
from models_registry.evaluation.models import Evaluation
from models_registry.training.compare import DEFAULT_FRAMES, MAX_FRAMES


class CompareForm(forms.Form):
    station = forms.ModelChoiceField(
        queryset=Station.objects.filter(deployments__is_active=True).distinct().order_by("code"),
        help_text="Its deployed version is the champion.",
    )
    frames = forms.IntegerField(
        initial=DEFAULT_FRAMES,
        min_value=1,
        max_value=MAX_FRAMES,
        help_text="How many of the station's latest verified frames to compare on "
        "(the inspector's final word is the truth).",
    )


@dataclass
class Side:
    """One comparison's figures: (figure, champion, challenger, which is better) rows."""

    title: str
    state: str
    count: int = 0
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    note: str = ""
    link: str = ""


def _pct(value) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def _better(champion, challenger, higher_is_better: bool) -> str:
    if champion is None or challenger is None or champion == challenger:
        return ""
    wins = challenger > champion if higher_is_better else challenger < champion
    return "challenger" if wins else "champion"


def _rows(champion: dict, challenger: dict, champion_line: dict, challenger_line: dict) -> list:
    rows = []
    for name, key, higher in (("accuracy", "accuracy", True), ("macro-F1", "macro_f1", True)):
        a, b = champion.get(key), challenger.get(key)
        rows.append((name, _pct(a), _pct(b), _better(a, b, higher)))
    f1_a, f1_b = champion.get("per_class_f1", {}), challenger.get("per_class_f1", {})
    for name in sorted(set(f1_a) | set(f1_b)):
        a, b = f1_a.get(name), f1_b.get(name)
        rows.append((f"F1 {name}", _pct(a), _pct(b), _better(a, b, True)))
    for name, key in (("escapes", "escapes"), ("false rejects", "false_rejects")):
        a, b = champion_line.get(key), challenger_line.get(key)
        rows.append(
            (name, "—" if a is None else str(a), "—" if b is None else str(b), _better(a, b, False))
        )
    return rows


def _per_class(metrics: dict) -> dict:
    return {name: row["f1"] for name, row in metrics.get("per_label", {}).items()}


def snapshot_side(evaluation: Evaluation | None) -> Side:
    if evaluation is None:
        return Side("On the training snapshot", "missing", note="The evaluation was removed.")
    side = Side(
        f"On {evaluation.snapshot} ({evaluation.get_split_display().lower()} split)",
        evaluation.state,
        link=reverse("admin:models_registry_evaluation_change", args=[evaluation.pk]),
    )
    if evaluation.state != JobState.DONE:
        side.note = evaluation.job.error if evaluation.job_id and evaluation.job.error else ""
        return side
    line = evaluation.line or {}
    champion = {**evaluation.metrics, "per_class_f1": _per_class(evaluation.metrics)}
    challenger = {
        **evaluation.challenger_metrics,
        "per_class_f1": _per_class(evaluation.challenger_metrics),
    }
    side.count = evaluation.metrics.get("count", 0)
    side.rows = _rows(champion, challenger, line.get("version") or {}, line.get("challenger") or {})
    if not line.get("version"):
        side.note = "Escapes and false rejects need every label mapped to a defect type."
    return side


def production_side(job: Job) -> Side:
    side = Side("On the station's latest verified frames", job.state)
    if job.state != JobState.DONE:
        side.note = job.error or job.message
        return side
    production = job.result.get("production", {})
    side.count = production.get("frames", 0)
    if not side.count:
        side.note = "The station has no verified frames yet."
        return side
    champion, challenger = production["champion"], production["challenger"]
    side.rows = _rows(champion, challenger, champion, challenger)
    return side


def comparison_context(job: Job, run) -> dict:
    """Everything the page shows of one comparison job."""
    evaluation = (
        Evaluation.objects.select_related("snapshot__dataset", "job")
        .filter(pk=job.payload.get("evaluation"))
        .first()
    )
    station = Station.objects.filter(pk=job.payload.get("station")).first()
    deploy_url = ""
    if station is not None and run.version_id:
        deploy_url = (
            f"{reverse('admin:models_registry_deployment_add')}?station={station.pk}"
            f"&version={run.version_id}&suggested=1"
        )
    return {
        "job": job,
        "station": station,
        "sides": [snapshot_side(evaluation), production_side(job)],
        "deploy_url": deploy_url,
    }
