"""Dashboard pages: plant overview, line view, review queue, inspection detail.

Pages render the current state; the browser then follows live events over
the WebSocket (``static/inspection/*.js``). Views stay thin: a selector, a
template.
"""

from dataclasses import replace

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from inspection import events, selectors
from inspection.choices import ReviewReason
from inspection.shift_counter import inspector_shift
from inspection.storage_usage import plant_storage_status, storage_warning
from inspection.trends import defect_sparklines, line_yield, yield_json
from masterdata.models import Plant

dashboard_required = permission_required(selectors.DASHBOARD_PERMISSION, raise_exception=True)
review_required = permission_required(selectors.REVIEW_PERMISSION, raise_exception=True)
inspection_view_required = permission_required("inspection.view_inspection", raise_exception=True)

RECENT_FRAMES = 24


def _station_json(
    status: selectors.StationStatus, line_code: str, sparkline: list[float | None]
) -> dict:
    return {
        "station": status.station.code,
        "line": line_code,
        "active": status.station.active,
        "last": events.inspection_payload(status.last) if status.last else None,
        "frames_per_minute": status.frames_per_minute,
        "defect_rate_hour": status.defect_rate_hour,
        "defect_rate_shift": status.defect_rate_shift,
        "pending": status.pending,
        "versions": status.versions,
        "sparkline": sparkline,
    }


def _stations_json(status: selectors.LineStatus) -> list[dict]:
    sparklines = defect_sparklines([s.station.pk for s in status.stations])
    return [_station_json(s, status.line.code, sparklines[s.station.pk]) for s in status.stations]


def _lines_json(statuses: list[selectors.LineStatus]) -> list[dict]:
    return [
        {
            "line": status.line.code,
            "shift": status.shift_name,
            "pending": status.pending,
            "yield": yield_json(line_yield(status.line)),
            "stations": _stations_json(status),
        }
        for status in statuses
    ]


@login_required
@dashboard_required
def overview(request: HttpRequest) -> HttpResponse:
    statuses = selectors.line_status(lines=selectors.overview_lines())
    statuses = [replace(status, shift_yield=line_yield(status.line)) for status in statuses]
    plants = {status.line.plant_id: status.line.plant for status in statuses}
    storage = [plant_storage_status(plant) for plant in plants.values()]
    return render(
        request,
        "inspection/overview.html",
        {"lines": statuses, "storage": storage, "storage_warning": storage_warning()},
    )


@login_required
@dashboard_required
def overview_status(request: HttpRequest) -> JsonResponse:
    """The overview's figures (or one line's, with ``?line=``), refreshed by the pages."""
    lines = selectors.overview_lines()
    if request.GET.get("line"):
        lines = [line for line in lines if line.code == request.GET["line"]]
    statuses = selectors.line_status(lines=lines)
    return JsonResponse({"lines": _lines_json(statuses)})


@login_required
@dashboard_required
def line_view(request: HttpRequest, code: str) -> HttpResponse:
    line = selectors.line_by_code(code)
    if line is None:
        raise Http404(f"No line {code}.")
    [status] = selectors.line_status(lines=[line])
    frames = selectors.recent_frames(line=line, limit=RECENT_FRAMES)
    return render(
        request,
        "inspection/line.html",
        {
            "line": line,
            "status": status,
            "storage_warning": storage_warning(),
            "initial": {
                "line": line.code,
                "stations": _stations_json(status),
                "frames": [events.inspection_payload(frame) for frame in frames],
                "max_frames": RECENT_FRAMES,
            },
        },
    )


@login_required
@review_required
def review_queue(request: HttpRequest) -> HttpResponse:
    line = request.GET.get("line", "")
    station = request.GET.get("station", "")
    defect_types = selectors.review_defect_types()
    lines = selectors.review_filters()
    plant_ids = {candidate.plant_id for candidate in lines if not line or candidate.code == line}
    return render(
        request,
        "inspection/review.html",
        {
            "lines": lines,
            "line_filter": line,
            "station_filter": station,
            "defect_types": defect_types,
            "config": {
                "user": request.user.get_username(),
                "claim_seconds": settings.LINESIGHT["REVIEW_CLAIM_SECONDS"],
                "line": line,
                "station": station,
                "defect_types": [
                    {"code": d.code, "name": d.name, "severity": d.severity}
                    for d in defect_types[:9]
                ],
                "review_reasons": dict(ReviewReason.choices),
                # One plant in view: its shift calendar; several: the last 8 hours.
                "shift": inspector_shift(
                    inspector=request.user,
                    plant=Plant.objects.get(pk=plant_ids.pop()) if len(plant_ids) == 1 else None,
                ),
            },
        },
    )


@login_required
@inspection_view_required
def inspection_detail(request: HttpRequest, pk: int) -> HttpResponse:
    inspection = selectors.inspection_detail(pk)
    if inspection is None:
        raise Http404(f"No inspection #{pk}.")
    return render(
        request,
        "inspection/detail.html",
        {
            "inspection": inspection,
            "payload": events.inspection_payload(inspection),
            "history": selectors.verification_history(inspection),
        },
    )
