"""The reports page and the downloads: validate the filters, call a selector, answer."""

import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import suppress
from functools import partial, wraps
from itertools import islice

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.handlers.asgi import ASGIRequest
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from common.jobs import job_retry
from common.models import Job, JobState
from reports import exports, page, selectors
from reports.filters import ReportFilterError, ReportFilters, report_filters
from reports.jobs import export_download_name
from reports.services import export_job_request

reports_permission = permission_required("reports.view_reports", raise_exception=True)
ReportView = Callable[..., HttpResponse]


def _report_view(view: ReportView) -> ReportView:
    """GET only, for signed-in users with the reports permission."""
    return require_GET(login_required(reports_permission(view)))


def _filtered(view: Callable[[HttpRequest, ReportFilters], HttpResponse]) -> ReportView:
    """A report view called with the request's filters; wrong filters show the page's error."""

    @wraps(view)
    def with_filters(request: HttpRequest) -> HttpResponse:
        try:
            # The page's form sends its "all" choices as empty fields.
            filters = report_filters(request.GET, blank_means_all=True)
        except ReportFilterError as error:
            context = {"params": request.GET.dict(), "error": error.message}
            context.update(page.filter_choices())
            return render(request, "reports/report.html", context, status=400)
        return view(request, filters)

    return _report_view(with_filters)


@_filtered
def report_page(request: HttpRequest, filters: ReportFilters) -> HttpResponse:
    context = {
        "params": filters.as_params(),
        "recent_exports": selectors.recent_exports(request.user),
        **page.filter_choices(),
        **page.report_context(filters),
    }
    return render(request, "reports/report.html", context)


@_filtered
def export_xlsx(request: HttpRequest, filters: ReportFilters) -> HttpResponse:
    """The workbook now, or as a background job when it holds too many rows for a request."""
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
    return _file_response(request, workbook, exports.export_filename(filters.as_params()))


@_filtered
def export_csv(request: HttpRequest, filters: ReportFilters) -> HttpResponse:
    """Every selected inspection as CSV, streamed from the database."""
    content = _streamed(request, partial(exports.csv_chunks, filters))
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    name = exports.export_filename(filters.as_params(), "csv")
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


FILE_BLOCK_BYTES = 256 * 1024


def _file_response(request: HttpRequest, file, filename: str) -> FileResponse:
    """A download of an open binary file, closed once sent.

    Under ASGI the file is read a block at a time through an async iterator:
    Django would otherwise read a file's sync iterator whole into memory,
    with a "must consume synchronous iterators" warning, before sending it.
    """
    response = FileResponse(file, as_attachment=True, filename=filename)
    if isinstance(request, ASGIRequest):
        response.streaming_content = _async_blocks(file)  # the file stays among its closers
    return response


async def _async_blocks(file) -> AsyncIterator[bytes]:
    read = sync_to_async(file.read, thread_sensitive=True)
    while block := await read(FILE_BLOCK_BYTES):
        yield block


def _own_job(request: HttpRequest, job_id) -> Job:
    job = selectors.export_job_of(request.user, job_id)
    if job is None:
        raise Http404("No such export of yours.")
    return job


@_report_view
def export_job(request: HttpRequest, job_id) -> HttpResponse:
    """A background export's page; its script follows the job through the jobs API."""
    job = _own_job(request, job_id)
    filters = job.payload.get("filters", {})
    return render(
        request,
        "reports/export_job.html",
        {
            "job": job,
            "filters": filters,
            "waiting": job.state in {JobState.QUEUED, JobState.RUNNING},
            "percent": round(job.progress * 100),
            "job_url": reverse("job-detail", args=[job.pk]),
            "download_url": reverse("reports:export-job-download", args=[job.pk]),
            "report_url": f"{reverse('reports:page')}?{urlencode(filters)}",
        },
    )


@_report_view
def export_job_download(request: HttpRequest, job_id) -> HttpResponse:
    """A finished export's workbook, for the person who asked for it."""
    job = _own_job(request, job_id)
    name = (job.result or {}).get("file", "")
    if job.state != JobState.DONE or not name:
        raise Http404("This export is not ready.")
    if not default_storage.exists(name):
        raise Http404("This export's file is gone; export the report again.")
    filename = export_download_name(job)  # .xlsx or .csv, as the job was asked
    return _file_response(request, default_storage.open(name, "rb"), filename)


@require_POST
@login_required
@reports_permission
def export_job_run_again(request: HttpRequest, job_id) -> HttpResponse:
    """Queue a failed or cancelled export again (same job, same filters, same file name)."""
    job = _own_job(request, job_id)
    with suppress(ValidationError):  # already queued, running or done: its page shows which
        job_retry(job=job)
    return redirect("reports:export-job", job_id=job.pk)
