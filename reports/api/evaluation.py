"""``GET /api/v1/evaluations/{id}/export.xlsx``: an evaluation as a workbook.

It lives with the report exports (reports may read the registry, not the other way), under
the registry's permission to view evaluations; the evaluation's admin page links here.
"""

import tempfile

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request

from common.models import JobState
from models_registry.api.evaluations import NOT_FOUND, TAG, evaluation_or_404
from models_registry.api.serializers import ErrorSerializer
from models_registry.api.views import ERROR_RESPONSES, RegistryView
from reports.evaluation_export import evaluation_filename, write_evaluation_workbook

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class XlsxRenderer(BaseRenderer):
    """Lets a client ask for the workbook by its type; errors still come back as JSON text."""

    media_type = XLSX
    format = "xlsx"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return JSONRenderer().render(data)


class NotFinished(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "not_finished"


class EvaluationExportView(RegistryView):
    """The evaluation's figures, confusion matrices and one row per image, as xlsx."""

    required_permissions = {"GET": "models_registry.view_evaluation"}
    renderer_classes = [JSONRenderer, XlsxRenderer]

    @extend_schema(
        tags=[TAG],
        operation_id="evaluations_export_xlsx",
        summary="An evaluation as an xlsx workbook (metrics, confusion matrix, per-image rows)",
        responses={
            (200, XLSX): OpenApiResponse(OpenApiTypes.BINARY, description="The workbook."),
            409: OpenApiResponse(ErrorSerializer, description="The evaluation is not done."),
            **NOT_FOUND,
            **ERROR_RESPONSES,
        },
    )
    def get(self, request: Request, pk: int) -> FileResponse:
        evaluation = evaluation_or_404(pk)
        if evaluation.state != JobState.DONE:
            raise NotFinished(
                f"Evaluation {pk} is {evaluation.state}; its workbook exists once it is done."
            )
        # FileResponse closes the file when it is sent, and the OS removes it then.
        workbook = tempfile.TemporaryFile(prefix="linesight-evaluation-")  # noqa: SIM115
        try:
            write_evaluation_workbook(evaluation, workbook)
            workbook.seek(0)
        except BaseException:
            workbook.close()
            raise
        return FileResponse(
            workbook,
            as_attachment=True,
            filename=evaluation_filename(evaluation),
            content_type=XLSX,
        )
