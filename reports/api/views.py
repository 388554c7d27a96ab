"""Report tables as JSON for MES and BI tools, with the page's filters and permission."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from reports import figures, selectors
from reports.api import serializers
from reports.filters import ReportFilterError, ReportFilters, report_filters


class CanViewReports(permissions.BasePermission):
    message = (
        "Reading reports needs the 'reports.view_reports' permission (Viewers, Quality engineers)."
    )

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.has_perm("reports.view_reports"))


# An empty filter is refused (400), so the schema says a given one has at least one character.
NON_EMPTY = {"type": "string", "minLength": 1}
FILTER_PARAMETERS = [
    OpenApiParameter(
        "from",
        OpenApiTypes.DATE,
        description="First capture date (plant time), YYYY-MM-DD. Default: 6 days before 'to'.",
    ),
    OpenApiParameter(
        "to",
        OpenApiTypes.DATE,
        description="Last capture date (plant time), included. Default: today.",
    ),
    OpenApiParameter("plant", NON_EMPTY, description="Plant code."),
    OpenApiParameter("line", NON_EMPTY, description="Line code."),
    OpenApiParameter("station", NON_EMPTY, description="Station code."),
    OpenApiParameter("product", NON_EMPTY, description="Product SKU."),
    OpenApiParameter(
        "model_version",
        # MODEL_VERSION_RE without its group names (JSON Schema patterns are ECMA regexes).
        {**NON_EMPTY, "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}(:| v)[0-9]{1,9}$"},
        description="'name:number' or 'name vNumber', e.g. 'bottle-cap:3'.",
    ),
    OpenApiParameter("shift", NON_EMPTY, description="Shift name, e.g. 'Night'."),
]
BAD_FILTER = {400: OpenApiTypes.OBJECT}


class ReportView(APIView):
    permission_classes = [permissions.IsAuthenticated, CanViewReports]

    def filters(self, request: Request) -> ReportFilters:
        try:
            return report_filters(request.query_params)
        except ReportFilterError as error:
            raise ValidationError({"non_field_errors": [error.message]}) from None

    def envelope(self, filters: ReportFilters, **tables) -> dict:
        return {"filters": filters, "rollups": selectors.rollup_status(filters), **tables}


class SummaryView(ReportView):
    @extend_schema(
        summary="Totals: frames, verdicts, reviews, defect rate, first-pass yield",
        parameters=FILTER_PARAMETERS,
        responses={200: serializers.SummarySerializer, **BAD_FILTER},
    )
    def get(self, request: Request) -> Response:
        filters = self.filters(request)
        data = self.envelope(
            filters,
            totals=selectors.totals(filters),
            definitions={key: text for key, (_, text) in figures.DEFINITIONS.items()},
        )
        return Response(serializers.SummarySerializer(data).data)


class VolumeView(ReportView):
    @extend_schema(
        summary="Volume and quality per day, shift, line, station or product",
        parameters=[
            *FILTER_PARAMETERS,
            OpenApiParameter(
                "by", OpenApiTypes.STR, enum=list(selectors.DIMENSIONS), default="day"
            ),
        ],
        responses={200: serializers.VolumeTableSerializer, **BAD_FILTER},
    )
    def get(self, request: Request) -> Response:
        filters = self.filters(request)
        by = request.query_params.get("by", "day")
        if by not in selectors.DIMENSIONS:
            raise ValidationError(
                {
                    "non_field_errors": [
                        f"'by' must be one of {', '.join(selectors.DIMENSIONS)}, not '{by}'."
                    ]
                }
            )
        data = self.envelope(filters, by=by, rows=selectors.volume(filters, by=by))
        return Response(serializers.VolumeTableSerializer(data).data)


class ParetoView(ReportView):
    @extend_schema(
        summary="Confirmed defects by defect type, with severity, share and cumulative share",
        parameters=FILTER_PARAMETERS,
        responses={200: serializers.ParetoSerializer, **BAD_FILTER},
    )
    def get(self, request: Request) -> Response:
        filters = self.filters(request)
        data = self.envelope(filters, rows=selectors.pareto(filters))
        return Response(serializers.ParetoSerializer(data).data)


class ModelVersionsView(ReportView):
    @extend_schema(
        summary="Model against inspectors per model version",
        description=(
            "Agreement, false-call and escape rates, confusion matrix and "
            "precision/recall per defect type."
        ),
        parameters=FILTER_PARAMETERS,
        responses={200: serializers.ModelVersionsSerializer, **BAD_FILTER},
    )
    def get(self, request: Request) -> Response:
        filters = self.filters(request)
        data = self.envelope(filters, rows=selectors.model_versions(filters))
        return Response(serializers.ModelVersionsSerializer(data).data)


class AgreementView(ReportView):
    @extend_schema(
        summary="Agreement of each model version with the inspectors per day",
        parameters=FILTER_PARAMETERS,
        responses={200: serializers.AgreementSerializer, **BAD_FILTER},
    )
    def get(self, request: Request) -> Response:
        filters = self.filters(request)
        data = self.envelope(filters, rows=selectors.agreement_by_day(filters))
        return Response(serializers.AgreementSerializer(data).data)


class InspectorsView(ReportView):
    @extend_schema(
        summary="Inspectors: decisions per hour, frame-to-decision time, share of corrections",
        parameters=FILTER_PARAMETERS,
        responses={200: serializers.InspectorsSerializer, **BAD_FILTER},
    )
    def get(self, request: Request) -> Response:
        filters = self.filters(request)
        data = self.envelope(filters, rows=selectors.inspectors(filters))
        return Response(serializers.InspectorsSerializer(data).data)
