"""Evaluations in admin: the "Evaluate" form, and one page per evaluation with its progress
(followed live), metrics, confusion heat map, calibration chart, what the line would have seen,
champion against challenger with McNemar's test in words, and the images behind the figures.

Starting an evaluation and enabling the fast decode path are services
(models_registry.evaluation.services); images are shown through the dataset admin's
permission-checked thumbnail and image views, never through a media URL.
"""

from functools import partial

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse

from common.admin_forms import ServiceAdminMixin, admin_change_url
from common.models import JobState
from models_registry.choices import VersionStatus
from models_registry.datasets.models import DatasetSnapshot
from models_registry.evaluation import selectors
from models_registry.evaluation.models import Evaluation, EvaluationResult, EvaluationSplit
from models_registry.evaluation.services import (
    DEFAULT_TARGET_ESCAPE_RATE,
    FAST_PATH_MIN_AGREEMENT,
    evaluation_start,
    version_enable_fast_path,
)
from models_registry.models import Deployment, ModelVersion

TEMPLATES = "admin/models_registry/evaluation"
PREVIEW_SIZE = 24  # images of each kind on the evaluation page; the rest a page away
GRID_PAGE_SIZE = 48
FINISHED = {JobState.DONE, JobState.FAILED, JobState.CANCELLED}
IMAGE_KINDS = {
    "wrong": "images the champion got wrong",
    "disagree": "images the two versions label differently",
}


def _ready_versions():
    return ModelVersion.objects.filter(status=VersionStatus.READY).select_related("model")


class EvaluateForm(forms.Form):
    """What the "Evaluate" page asks: the same fields as ``POST /api/v1/evaluations/``."""

    version = forms.ModelChoiceField(
        queryset=_ready_versions(), help_text="The champion: a ready version."
    )
    snapshot = forms.ModelChoiceField(
        queryset=DatasetSnapshot.objects.select_related("dataset").order_by(
            "dataset__name", "-number"
        ),
        help_text="The frozen images, labels and splits the versions are run on.",
    )
    split = forms.ChoiceField(choices=EvaluationSplit.choices, initial=EvaluationSplit.TEST)
    challenger = forms.ModelChoiceField(
        queryset=_ready_versions(),
        required=False,
        help_text="Optional: a second version run on exactly the same images, side by side.",
    )
    deployment = forms.ModelChoiceField(
        queryset=Deployment.objects.filter(is_active=True).select_related(
            "station", "product", "version__model"
        ),
        required=False,
        help_text="Whose thresholds the line simulation uses (default: the version's active "
        "deployment, else a new deployment's defaults).",
    )
    target_escape_rate = forms.FloatField(
        min_value=0.0,
        max_value=1.0,
        initial=DEFAULT_TARGET_ESCAPE_RATE,
        help_text="Share of defective parts allowed to pass (0.01 = 1 %); a reject threshold "
        "per defect type that reaches it is suggested.",
    )
    check_fast_path = forms.BooleanField(
        required=False,
        help_text="Also decode every JPEG the fast way (reduced scale) and count how often the "
        f"label stays the same; at {FAST_PATH_MIN_AGREEMENT:.1%} or more it may be switched on.",
    )


def mcnemar_sentence(evaluation: Evaluation) -> str:
    """McNemar's test between champion and challenger, said plainly."""
    test = evaluation.paired_test
    if not test:
        return ""
    champion, challenger = evaluation.version, evaluation.challenger
    a, b = test["only_champion_right"], test["only_challenger_right"]
    opening = (
        f"The two versions predict different classes on {test.get('disagreements', a + b)} of "
        f"{evaluation.image_count} images; only {champion} is right on {a}, only {challenger} "
        f"on {b}."
    )
    p_value = f"p = {test['p_value']:.3g}"
    if not test["significant"]:
        return (
            f"{opening} McNemar's test ({test['method']}, {p_value}) finds no difference beyond "
            "chance: on these images neither version is shown to be better."
        )
    better = champion if a > b else challenger
    return (
        f"{opening} McNemar's test ({test['method']}, {p_value}) says the difference is more "
        f"than chance (at the 5 % level): {better} is better on these images."
    )


def heat_map(confusion: dict) -> dict:
    """The confusion matrix as rows of cells shaded by their share of the true class."""
    labels, matrix = confusion.get("labels", []), confusion.get("matrix", [])
    rows = []
    for row, (label, counts) in enumerate(zip(labels, matrix, strict=True)):
        total = sum(counts) or 1
        cells = [
            {
                "count": count,
                "share": count / total,
                # Shade by share of the row, so a rare class's mistakes show as plainly.
                "alpha": round(0.08 + 0.82 * count / total, 3) if count else 0,
                "dark": count / total > 0.55,
                "diagonal": column == row,
            }
            for column, count in enumerate(counts)
        ]
        rows.append({"label": label, "cells": cells, "total": sum(counts)})
    return {"labels": labels, "rows": rows}


def figures_of(metrics: dict) -> dict:
    """One version's metrics as the page shows them (empty until the job is done)."""
    if not metrics:
        return {}
    return {
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "ece": metrics.get("ece"),
        "latency_p50": (metrics.get("latency_ms") or {}).get("p50"),
        "runtime": metrics.get("runtime", ""),
        "per_label": sorted(metrics["per_label"].items()),
        "heat_map": heat_map(metrics["confusion"]),
        "calibration": (metrics.get("calibration") or {}).get("bins", []),
        "count": metrics.get("count", 0),
    }


def calibration_data(evaluation: Evaluation) -> dict:
    """The reliability bins of each version, for the page's chart script."""
    data = {
        "champion": {
            "name": str(evaluation.version),
            "bins": (evaluation.metrics.get("calibration") or {}).get("bins", []),
        }
    }
    if evaluation.challenger_id and evaluation.challenger_metrics:
        data["challenger"] = {
            "name": str(evaluation.challenger),
            "bins": (evaluation.challenger_metrics.get("calibration") or {}).get("bins", []),
        }
    return data


def side_by_side(evaluation: Evaluation) -> dict:
    """Rows of champion and challenger figures for the comparison table."""
    mine, theirs = evaluation.metrics, evaluation.challenger_metrics
    line = evaluation.line or {}
    line_mine, line_theirs = line.get("version") or {}, line.get("challenger") or {}
    rows = [
        ("Accuracy", mine.get("accuracy"), theirs.get("accuracy"), "percent", True),
        ("Macro-F1", mine.get("macro_f1"), theirs.get("macro_f1"), "number", True),
        ("Expected calibration error", mine.get("ece"), theirs.get("ece"), "number", False),
        (
            "Escape rate on the line",
            line_mine.get("escape_rate"),
            line_theirs.get("escape_rate"),
            "percent",
            False,
        ),
        (
            "Review load on the line",
            line_mine.get("review_load"),
            line_theirs.get("review_load"),
            "percent",
            False,
        ),
        (
            "Latency p50 (ms)",
            (mine.get("latency_ms") or {}).get("p50"),
            (theirs.get("latency_ms") or {}).get("p50"),
            "ms",
            False,
        ),
    ]
    table = []
    for name, a, b, unit, higher_is_better in rows:
        if a is None and b is None:
            continue
        better = ""
        if a is not None and b is not None and a != b:
            better = "champion" if (a > b) == higher_is_better else "challenger"
        table.append({"name": name, "champion": a, "challenger": b, "unit": unit, "better": better})
    per_label = [
        {
            "label": label,
            "champion": figures["f1"],
            "challenger": (theirs.get("per_label") or {}).get(label, {}).get("f1"),
            "support": figures["support"],
        }
        for label, figures in sorted((mine.get("per_label") or {}).items())
    ]
    return {"rows": table, "per_label": per_label}


def line_view(evaluation: Evaluation) -> dict:
    """What the line would have made of the images, with the thresholds it used."""
    line = evaluation.line or {}
    thresholds = line.get("thresholds") or evaluation.options.get("thresholds") or {}
    deployment = None
    if thresholds.get("deployment"):
        deployment = (
            Deployment.objects.select_related("station", "product", "version__model")
            .filter(pk=thresholds["deployment"])
            .first()
        )
    mine = line.get("version") or {}
    return {
        "thresholds": thresholds,
        "defect_thresholds": sorted((thresholds.get("defect_thresholds") or {}).items()),
        "deployment": deployment,
        "outcome": mine,
        "per_type": sorted((mine.get("per_defect_type") or {}).items()),
        "suggestions": sorted((mine.get("suggestions") or {}).items()),
        "target": evaluation.options.get("target_escape_rate", DEFAULT_TARGET_ESCAPE_RATE),
        "challenger": line.get("challenger") or {},
    }


def image_tiles(evaluation: Evaluation, rows: list[EvaluationResult]) -> list[dict]:
    """Each row as a thumbnail linking to the image's page (the dataset admin's views)."""
    selectors.attach_challenger_results(evaluation=evaluation, rows=rows)
    dataset_id = evaluation.snapshot.dataset_id
    tiles = []
    for row in rows:
        image = row.item.image
        tiles.append(
            {
                "row": row,
                "name": image.original_name or image.sha256[:12],
                "thumbnail_url": reverse(
                    "admin:models_registry_dataset_thumbnail", args=[dataset_id, image.pk]
                ),
                "image_url": reverse(
                    "admin:models_registry_dataset_image", args=[dataset_id, image.pk]
                ),
                "challenger": row.challenger_result,
            }
        )
    return tiles


def version_evaluations(request: HttpRequest, version: ModelVersion, limit: int = 20) -> dict:
    """A version's evaluations (as champion or challenger) for its admin page; empty for a
    user who may not view evaluations."""
    user = request.user
    if not user.has_perm("models_registry.view_evaluation"):
        return {}
    rows = list(selectors.evaluation_list(version=version)[:limit])
    return {
        "evaluations": [
            {
                "evaluation": row,
                "role": "champion" if row.version_id == version.pk else "challenger",
                "other": row.challenger if row.version_id == version.pk else row.version,
                "metrics": row.metrics if row.version_id == version.pk else row.challenger_metrics,
                "url": admin_change_url(row),
            }
            for row in rows
        ],
        "evaluate_url": f"{reverse('admin:models_registry_evaluation_add')}?version={version.pk}",
        "can_evaluate": user.has_perm("models_registry.add_evaluation")
        and version.status == VersionStatus.READY,
    }


@admin.register(Evaluation)
class EvaluationAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = ("__str__", "state_shown", "accuracy", "challenger_accuracy", "created_at")
    list_filter = ("split", "snapshot__dataset")
    search_fields = ("version__model__name", "challenger__model__name", "snapshot__dataset__name")

    def get_queryset(self, request):
        return selectors.evaluation_list()

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # figures are what the job measured; a new evaluation is a new row

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the record of what a version was measured at

    @admin.display(description="state")
    def state_shown(self, obj: Evaluation) -> str:
        return obj.state

    @admin.display(description="accuracy")
    def accuracy(self, obj: Evaluation) -> str:
        value = obj.metrics.get("accuracy")
        return "—" if value is None else f"{value:.1%}"

    @admin.display(description="challenger's")
    def challenger_accuracy(self, obj: Evaluation) -> str:
        value = obj.challenger_metrics.get("accuracy")
        return "—" if value is None else f"{value:.1%}"

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        initial = {
            key: request.GET[key]
            for key in ("version", "snapshot", "challenger")
            if key in request.GET
        }
        return self.service_add_view(
            request,
            form_class=EvaluateForm,
            create=lambda form: evaluation_start(**form.cleaned_data, requested_by=request.user),
            success=lambda evaluation: f"Evaluation of {evaluation} queued; this page follows it.",
            title="Evaluate a model version",
            template=f"{TEMPLATES}/evaluate.html",
            initial=initial,
        )

    def get_urls(self):
        pages = [
            ("images/", self.images_view, "images"),
            ("fast-path/", self.fast_path_view, "fast_path"),
        ]
        return [
            path(
                f"<int:object_id>/{route}",
                self.admin_site.admin_view(view),
                name=f"models_registry_evaluation_{name}",
            )
            for route, view, name in pages
        ] + super().get_urls()

    def _evaluation(self, request: HttpRequest, object_id) -> Evaluation:
        if not self.has_view_permission(request):
            raise PermissionDenied
        evaluation = selectors.evaluation_list().filter(pk=object_id).first()
        if evaluation is None:
            raise Http404("No such evaluation.")
        return evaluation

    def change_view(self, request: HttpRequest, object_id, form_url="", extra_context=None):
        """The evaluation page: progress while the job runs, every figure once it is done."""
        evaluation = self._evaluation(request, object_id)
        job = evaluation.job
        done = evaluation.state == JobState.DONE and bool(evaluation.metrics)
        preview = partial(self._preview, evaluation)
        return self.service_page(
            request,
            template=f"{TEMPLATES}/evaluation.html",
            title=str(evaluation),
            evaluation=evaluation,
            job=job,
            running=evaluation.state not in FINISHED,
            percent=round((job.progress if job else 0) * 100),
            job_api_url=f"/api/v1/jobs/{job.pk}/" if job else "",
            done=done,
            champion=figures_of(evaluation.metrics) if done else {},
            challenger=figures_of(evaluation.challenger_metrics) if done else {},
            comparison=side_by_side(evaluation) if done and evaluation.challenger_id else {},
            verdict_sentence=mcnemar_sentence(evaluation) if done else "",
            line=line_view(evaluation) if done else {},
            wrong=preview("wrong") if done else {},
            disagree=preview("disagree") if done and evaluation.challenger_id else {},
            calibration_data=calibration_data(evaluation) if done else {},
            fast_path=self._fast_path(request, evaluation),
            dataset_url=admin_change_url(evaluation.snapshot.dataset),
            version_url=admin_change_url(evaluation.version),
            challenger_url=admin_change_url(evaluation.challenger)
            if evaluation.challenger_id
            else "",
        )

    def _preview(self, evaluation: Evaluation, kind: str) -> dict:
        rows = selectors.result_list(evaluation=evaluation, **{kind: True}).select_related(
            "item__image"
        )
        return {
            "count": rows.count(),
            "tiles": image_tiles(evaluation, list(rows[:PREVIEW_SIZE])),
            "url": self._images_url(evaluation, kind),
            "title": IMAGE_KINDS[kind],
        }

    @staticmethod
    def _images_url(evaluation: Evaluation, kind: str) -> str:
        url = reverse("admin:models_registry_evaluation_images", args=[evaluation.pk])
        return f"{url}?show={kind}"

    def _fast_path(self, request: HttpRequest, evaluation: Evaluation) -> dict:
        check = evaluation.fast_path or {}
        if not check:
            return {}
        agreement = check.get("agreement", 0.0)
        return {
            **check,
            "enough": agreement >= FAST_PATH_MIN_AGREEMENT,
            "needed": FAST_PATH_MIN_AGREEMENT,
            "already": evaluation.version.jpeg_draft,
            "can_enable": request.user.has_perm("models_registry.change_modelversion"),
            "url": reverse("admin:models_registry_evaluation_fast_path", args=[evaluation.pk]),
        }

    def images_view(self, request: HttpRequest, object_id) -> HttpResponse:
        """All the champion's mistakes, or all images the two versions disagree on, paged."""
        evaluation = self._evaluation(request, object_id)
        kind = request.GET.get("show", "wrong")
        if kind not in IMAGE_KINDS or (kind == "disagree" and not evaluation.challenger_id):
            kind = "wrong"
        rows = selectors.result_list(evaluation=evaluation, **{kind: True}).select_related(
            "item__image"
        )
        page = Paginator(rows, GRID_PAGE_SIZE).get_page(request.GET.get("page"))
        return self.service_page(
            request,
            template=f"{TEMPLATES}/images.html",
            title=f"{evaluation}: {IMAGE_KINDS[kind]}",
            evaluation=evaluation,
            page=page,
            kind=kind,
            tiles=image_tiles(evaluation, list(page.object_list)),
            evaluation_url=admin_change_url(evaluation),
        )

    def fast_path_view(self, request: HttpRequest, object_id) -> HttpResponse:
        """POST: switch the version to fast JPEG decoding on this evaluation's evidence."""
        evaluation = self._evaluation(request, object_id)
        if not request.user.has_perm("models_registry.change_modelversion"):
            raise PermissionDenied
        if request.method == "POST":
            version = evaluation.version
            if self.call_service(
                request,
                partial(version_enable_fast_path, version=version, evaluation=evaluation),
                success=f"{version} now decodes JPEG frames the fast way (reduced scale).",
            ):
                self.log_change(request, version, "Fast JPEG decoding enabled on evidence.")
        return HttpResponseRedirect(admin_change_url(evaluation))
