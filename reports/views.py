"""The reports page and the downloads: validate the filters, call a selector, answer."""

import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from itertools import islice

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.core.handlers.asgi import ASGIRequest
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from masterdata.models import Line, Plant, Product, Shift, Station
from models_registry.models import ModelVersion
from reports import exports, figures, selectors
from reports.filters import ReportFilterError, ReportFilters, report_filters
from reports.models import ExportJob, ExportStatus
from reports.services import export_filename, export_job_request

reports_permission = permission_required("reports.view_reports", raise_exception=True)


def _page_with_error(request: HttpRequest, message: str) -> HttpResponse:
    context = {"params": request.GET.dict(), "error": message, **_pickers()}
    return render(request, "reports/report.html", context, status=400)


def _pickers() -> dict:
    """Choices for the filter form."""
    return {
        "plants": Plant.objects.values_list("code", flat=True),
        "lines": Line.objects.values_list("code", flat=True),
        "stations": Station.objects.values_list("code", flat=True),
        "products": Product.objects.values_list("sku", flat=True),
        "model_versions": [
            f"{name} v{number}"
            for name, number in ModelVersion.objects.order_by("model__name", "number").values_list(
                "model__name", "number"
            )
        ],
        "shift_names": Shift.objects.order_by("name").values_list("name", flat=True).distinct(),
    }


def report_context(filters: ReportFilters) -> dict:
    """Every table of the page, one query each, and the data its charts draw."""
    daily = selectors.volume(filters, by="day")
    pareto = selectors.pareto(filters)
    versions = selectors.model_versions(filters)
    agreement = selectors.agreement_by_day(filters)
    chart_data = {
        "daily": {
            "labels": [row["date"].isoformat() for row in daily],
            "defect_rate": [row["defect_rate"] for row in daily],
            "first_pass_yield": [row["first_pass_yield"] for row in daily],
        },
        "pareto": {
            "labels": [row["defect_type"] for row in pareto],
            "confirmed": [row["confirmed"] for row in pareto],
            "cumulative_share": [row["cumulative_share"] for row in pareto],
        },
        "agreement": {
            "labels": [day.isoformat() for day in filters.days],
            "versions": {},
        },
    }
    for row in agreement:
        series = chart_data["agreement"]["versions"].setdefault(
            row["model_version"], {day: None for day in chart_data["agreement"]["labels"]}
        )
        series[row["date"].isoformat()] = row["agreement"]
    chart_data["agreement"]["versions"] = {
        name: list(series.values()) for name, series in chart_data["agreement"]["versions"].items()
    }
    for version in versions:
        version["heat"] = _heat_rows(version)
    return {
        "filters": filters,
        "query": urlencode(filters.as_params()),
        "totals": selectors.totals(filters),
        "tables": [
            {
                "id": by,
                "title": title,
                "columns": exports.DIMENSION_COLUMNS[by] + exports.VOLUME_COLUMNS,
                "rows": daily if by == "day" else selectors.volume(filters, by=by),
            }
            for by, title in (
                ("day", "By day"),
                ("shift", "By shift"),
                ("line", "By line"),
                ("station", "By station"),
                ("product", "By product"),
            )
        ],
        "volume_columns": exports.VOLUME_COLUMNS,
        "pareto": pareto,
        "pareto_columns": exports.PARETO_COLUMNS,
        "versions": versions,
        "version_columns": exports.VERSION_COLUMNS,
        "precision_columns": exports.PRECISION_COLUMNS[1:],
        "agreement": agreement,
        "agreement_columns": exports.AGREEMENT_COLUMNS,
        "inspectors": selectors.inspectors(filters),
        "inspector_columns": exports.INSPECTOR_COLUMNS,
        "definitions": figures.DEFINITIONS,
        "chart_data": chart_data,
    }


def _heat_rows(version: dict) -> list[dict]:
    """The confusion matrix with each cell's share of its row, to shade the heat map."""
    names = [label or "no defect" for label in version["labels"]]
    rows = []
    for name, counts in zip(names, version["matrix"], strict=True):
        total = sum(counts)
        rows.append(
            {
                "label": name,
                "cells": [
                    {
                        "column": column,
                        "count": count,
                        "heat": f"{count / total:.2f}" if total else "0",
                        "hot": bool(total) and count / total >= 0.6,
                        "diagonal": column == name,
                    }
                    for column, count in zip(names, counts, strict=True)
                ],
            }
        )
    return rows


@require_GET
@login_required
@reports_permission
def report_page(request: HttpRequest) -> HttpResponse:
    try:
        filters = report_filters(request.GET)
    except ReportFilterError as error:
        return _page_with_error(request, error.message)
    context = {
        "params": filters.as_params(),
        "recent_exports": ExportJob.objects.filter(requested_by=request.user)[:5],
        **_pickers(),
        **report_context(filters),
    }
    return render(request, "reports/report.html", context)


@require_GET
@login_required
@reports_permission
def export_xlsx(request: HttpRequest) -> HttpResponse:
    """The workbook now, or as a background job when it holds too many rows for a request."""
    try:
        filters = report_filters(request.GET)
    except ReportFilterError as error:
        return _page_with_error(request, error.message)
    if selectors.row_count(filters) > settings.LINESIGHT["EXPORT_INLINE_MAX_ROWS"]:
        job = export_job_request(user=request.user, filters=filters)
        return redirect("reports:export-job", job_id=job.pk)
    # FileResponse closes the file when it is sent, and the OS removes it then.
    workbook = tempfile.TemporaryFile(prefix="linesight-export-")  # noqa: SIM115
    try:
        exports.write_workbook(filters, workbook)
        workbook.seek(0)
    except BaseException:
        workbook.close()
        raise
    return FileResponse(workbook, as_attachment=True, filename=export_filename(filters))


@require_GET
@login_required
@reports_permission
def export_csv(request: HttpRequest) -> HttpResponse:
    """Every selected inspection as CSV, streamed from the database."""
    try:
        filters = report_filters(request.GET)
    except ReportFilterError as error:
        return _page_with_error(request, error.message)
    content = _streamed(request, partial(exports.csv_chunks, filters))
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    name = export_filename(filters).replace(".xlsx", ".csv")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _streamed(request: HttpRequest, chunks: Callable[[], Iterator[bytes]]):
    """Sync chunks under WSGI; under ASGI an async iterator, so Django does not buffer them.

    (Django consumes a synchronous iterator whole before serving it under
    ASGI.) The database work stays in one thread, a batch of chunks at a time.
    """
    if isinstance(request, ASGIRequest):
        return _async_chunks(chunks)
    return chunks()


async def _async_chunks(chunks: Callable[[], Iterator[bytes]]) -> AsyncIterator[bytes]:
    iterator = await sync_to_async(chunks, thread_sensitive=True)()
    take = sync_to_async(lambda: list(islice(iterator, 20)), thread_sensitive=True)
    while batch := await take():
        for chunk in batch:
            yield chunk


def _own_job(request: HttpRequest, job_id) -> ExportJob:
    job = ExportJob.objects.filter(pk=job_id, requested_by=request.user).first()
    if job is None:
        raise Http404("No such export of yours.")
    return job


@require_GET
@login_required
@reports_permission
def export_job(request: HttpRequest, job_id) -> HttpResponse:
    """The status of a background export; reloads itself until the workbook is ready."""
    job = _own_job(request, job_id)
    return render(
        request,
        "reports/export_job.html",
        {
            "job": job,
            "waiting": job.status in {ExportStatus.QUEUED, ExportStatus.RUNNING},
            "download_url": reverse("reports:export-job-download", args=[job.pk]),
            "report_url": f"{reverse('reports:page')}?{urlencode(job.filters)}",
        },
    )


@require_GET
@login_required
@reports_permission
def export_job_download(request: HttpRequest, job_id) -> HttpResponse:
    job = _own_job(request, job_id)
    if job.status != ExportStatus.DONE or not job.file:
        raise Http404("This export is not ready.")
    frm, to = job.filters.get("from", "from"), job.filters.get("to", "to")
    return FileResponse(
        job.file.open("rb"), as_attachment=True, filename=f"linesight-report-{frm}-to-{to}.xlsx"
    )
