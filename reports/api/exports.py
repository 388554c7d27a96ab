"""Exports for scripts and BI tools, with a user's API token.

``POST /api/v1/exports/`` queues the same ``report_export`` job the reports
page queues (``reports.services.export_job_request``), as a workbook or a CSV;
``GET /api/v1/exports/{id}/`` says where it stands and, once done, links
``/download/``. A small CSV needs no job: ``GET /api/v1/exports/csv/`` streams
it at once, up to the row count the page builds inline. Every endpoint needs
the reports permission, and nobody sees another person's exports (404).
"""

from functools import partial

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.jobs import jobs_sweep
from common.models import Job, JobState
from models_registry.api.serializers import ErrorSerializer
from reports import exports, selectors
from reports.api.exports_serializers import ExportRequestSerializer, ExportSerializer
from reports.api.views import FILTER_PARAMETERS, CanViewReports
from reports.filters import PARAMETERS, ReportFilterError, ReportFilters, report_filters
from reports.jobs import export_download_name, export_file_name
from reports.services import export_job_request
from reports.views import _file_response, _streamed

TAG = "exports"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ERRORS = {
    401: OpenApiResponse(ErrorSerializer, description="No or a wrong API token."),
    403: OpenApiResponse(
        ErrorSerializer, description="No reports permission (or a station's device token)."
    ),
}
BAD_REQUEST = {
    400: OpenApiResponse(ErrorSerializer, description="Bad format or filters; nothing queued.")
}
NOT_FOUND = {404: OpenApiResponse(ErrorSerializer, description="No export of yours with this id.")}


class NotReady(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "not_ready"


class FileGone(APIException):
    status_code = status.HTTP_410_GONE
    default_code = "gone"


def export_filters(data, *, also: frozenset[str] = frozenset()) -> ReportFilters:
    """The report filters in ``data``; a key that is neither a filter nor in ``also`` is refused.

    A misspelt filter (``staton``) would otherwise export every station as if it were one.
    """
    for key in data:
        if key not in PARAMETERS and key not in also:
            accepted = ", ".join(sorted(also) + list(PARAMETERS))
            raise ValidationError({key: f"Unknown field '{key}'; an export takes {accepted}."})
    params = {key: "" if data[key] is None else data[key] for key in PARAMETERS if key in data}
    try:
        return report_filters(params)
    except ReportFilterError as error:
        raise ValidationError({"non_field_errors": [error.message]}) from None


class ExportView(APIView):
    permission_classes = [permissions.IsAuthenticated, CanViewReports]

    def own_export(self, request: Request, pk) -> Job:
        job = selectors.export_job_of(request.user, pk)
        if job is None:
            raise Http404("No export of yours with this id.")
        return job


class ExportsView(ExportView):
    @extend_schema(
        tags=[TAG],
        operation_id="exports_create",
        summary="Start an export (xlsx or csv) of the report filters",
        description="Queues the export on the task worker; poll `url` until `state` is "
        "`done`, then GET `download_url` with the same token.",
        request=ExportRequestSerializer,
        responses={202: ExportSerializer, **BAD_REQUEST, **ERRORS},
        parameters=[
            OpenApiParameter(
                "Location",
                str,
                location=OpenApiParameter.HEADER,
                response=[202],
                description="URL of the export's state.",
            )
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = ExportRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        filters = export_filters(request.data, also=frozenset({"format"}))
        job = export_job_request(
            user=request.user, filters=filters, file_format=serializer.validated_data["format"]
        )
        body = ExportSerializer(job, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


class ExportDetailView(ExportView):
    @extend_schema(
        tags=[TAG],
        operation_id="exports_retrieve",
        summary="An export's state, progress and, once done, its download link",
        responses={200: ExportSerializer, **NOT_FOUND, **ERRORS},
    )
    def get(self, request: Request, pk) -> Response:
        jobs_sweep()  # an export whose worker died reads as failed, not running forever
        job = self.own_export(request, pk)
        return Response(ExportSerializer(job, context={"request": request}).data)


class ExportDownloadView(ExportView):
    def perform_content_negotiation(self, request: Request, force: bool = False):
        # The file is what it is; a client asking for text/csv still gets errors as JSON.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        tags=[TAG],
        operation_id="exports_download",
        summary="A finished export's file",
        responses={
            (200, XLSX): OpenApiResponse(OpenApiTypes.BINARY, description="The workbook."),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="The CSV."),
            409: OpenApiResponse(ErrorSerializer, description="Not done (or failed)."),
            410: OpenApiResponse(ErrorSerializer, description="Its file was deleted."),
            **NOT_FOUND,
            **ERRORS,
        },
    )
    def get(self, request: Request, pk) -> FileResponse:
        job = self.own_export(request, pk)
        if job.state in (JobState.QUEUED, JobState.RUNNING):
            raise NotReady(
                f"Export {job.pk} is {job.state} ({round(job.progress * 100)} %); "
                "download it once its state is done."
            )
        if job.state != JobState.DONE:
            reason = f": {job.error}" if job.error else ""
            raise NotReady(f"Export {job.pk} is {job.state}{reason}. Start a new export.")
        name = (job.result or {}).get("file") or export_file_name(job)
        if not default_storage.exists(name):
            raise FileGone(f"Export {job.pk}'s file is gone; start the export again.")
        file = default_storage.open(name, "rb")
        return _file_response(request._request, file, export_download_name(job))


class ExportCsvView(ExportView):
    @extend_schema(
        tags=[TAG],
        operation_id="exports_csv_stream",
        summary="A small CSV of the report filters, streamed at once",
        description="One line per inspection. Up to `EXPORT_INLINE_MAX_ROWS` rows (50,000 "
        "by default); above it, 400: start the export with POST /api/v1/exports/.",
        parameters=FILTER_PARAMETERS,
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="The CSV."),
            400: OpenApiResponse(
                ErrorSerializer, description="Bad filters, or too many rows for a request."
            ),
            **ERRORS,
        },
    )
    def get(self, request: Request) -> StreamingHttpResponse | Response:
        filters = export_filters(request.query_params)
        rows, limit = exports.csv_row_count(filters), settings.LINESIGHT["EXPORT_INLINE_MAX_ROWS"]
        if rows > limit:
            return Response(
                {
                    "detail": f"This CSV holds {rows:,} rows; at most {limit:,} stream at once. "
                    'Start it as an export: POST /api/v1/exports/ with {"format": "csv"} and '
                    "the same filters.",
                    "row_count": rows,
                    "limit": limit,
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        content = _streamed(request._request, partial(exports.csv_chunks, filters))
        response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
        name = exports.export_filename(filters.as_params(), "csv")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
