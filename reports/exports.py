"""The xlsx workbook and the CSV of every inspection, with the report's filters.

Both stream: the workbook is an openpyxl write-only workbook whose row
sheets are fed from database iterators, and the CSV is produced in chunks of
lines. Neither holds all rows in memory. Times are written in each frame's
plant time zone: in the workbook as spreadsheet dates (Excel has no time
zones), in the CSV as ISO 8601 with the UTC offset.
"""

import csv
import datetime as dt
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from django.utils import timezone
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.formatting.rule import ColorScaleRule
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from models_registry.models import version_label
from reports import figures, selectors
from reports.filters import ReportFilters
from reports.xlsx_rows import DATE, DATETIME, FastRows, WriteOnlyWorksheet

# The files an export can be: the workbook of every report table, or the CSV of its inspections.
EXPORT_FORMATS = ("xlsx", "csv")
# Excel holds 1,048,576 rows a sheet; longer row sheets continue on "<title> 2", ...
MAX_SHEET_ROWS = 1_048_575
PROGRESS_EVERY_ROWS = 1000
PERCENT = "0.0%"
SECONDS = "0.0"
RATE_KEYS = {
    "defect_rate",
    "first_pass_yield",
    "share",
    "cumulative_share",
    "agreement",
    "false_call_rate",
    "escape_rate",
    "precision",
    "recall",
    "correction_share",
    "reject_share",
    "lab_accuracy",
    "lab_macro_f1",
    "lab_line_gap",
}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Column:
    key: str
    heading: str
    width: float = 12
    number_format: str | None = None
    unique: bool = False  # values rarely repeat (ids, times, serials): not worth caching


def _rate(key: str, width: float = 12) -> Column:
    return Column(key, figures.heading(key), width, PERCENT)


def _count(key: str, width: float = 11) -> Column:
    return Column(key, figures.heading(key), width)


VOLUME_COLUMNS = [
    _count("frames"),
    _count("passed", 9),
    _count("failed", 9),
    _count("to_review", 9),
    _count("pending", 10),
    _count("verified", 10),
    _count("defective", 10),
    _rate("defect_rate"),
    _count("confirmed_defects", 12),
    _count("first_pass_good", 12),
    _rate("first_pass_yield", 13),
]
DIMENSION_COLUMNS = {
    "day": [Column("date", "Date", 12, DATE)],
    "shift": [
        Column("shift_date", "Shift date", 12, DATE),
        Column("plant", "Plant", 10),
        Column("shift", "Shift", 12),
    ],
    "line": [Column("plant", "Plant", 10), Column("line", "Line", 14)],
    "station": [Column("line", "Line", 14), Column("station", "Station", 14)],
    "product": [Column("product", "Product", 14), Column("product_name", "Product name", 24)],
}
PARETO_COLUMNS = [
    Column("defect_type", "Defect type", 16),
    Column("name", "Name", 22),
    Column("severity", "Severity", 10),
    Column("confirmed", "Confirmed defects", 12),
    Column("share", "Share", 9, PERCENT),
    Column("cumulative_share", "Cumulative share", 12, PERCENT),
    Column("awaiting_review", "Awaiting review", 12),
]
VERSION_COLUMNS = [
    Column("model_version", "Model version", 18),
    Column("frames", "Frames", 10),
    Column("verified", "Verified", 10),
    Column("agreed", "Agreed", 10),
    _rate("agreement", 11),
    Column("defect_calls_verified", "Defect calls verified", 14),
    Column("false_calls", "False calls", 10),
    _rate("false_call_rate", 12),
    Column("sampled_passes_verified", "Sampled passes verified", 14),
    Column("escapes", "Escapes", 10),
    _rate("escape_rate", 11),
]
LAB_COLUMNS = [
    Column("model_version", "Model version", 18),
    Column("dataset", "Dataset", 16),
    Column("snapshot", "Snapshot", 9),
    Column("split", "Split", 10),
    Column("images", "Images", 9),
    _rate("lab_accuracy", 11),
    _rate("lab_macro_f1", 11),
    Column("verified", "Verified frames", 10),
    Column("agreement", "Line agreement", 11, PERCENT),
    _rate("lab_line_gap", 11),
]
PRECISION_COLUMNS = [
    Column("model_version", "Model version", 18),
    Column("defect_type", "Defect type", 16),
    Column("model_calls", "Model says", 11),
    Column("inspector_calls", "Inspector says", 12),
    Column("both", "Both", 8),
    _rate("precision", 11),
    _rate("recall", 11),
]
AGREEMENT_COLUMNS = [
    Column("model_version", "Model version", 18),
    Column("date", "Date", 12, DATE),
    Column("verified", "Verified", 10),
    Column("agreed", "Agreed", 10),
    _rate("agreement", 11),
]
INSPECTOR_COLUMNS = [
    Column("inspector", "Inspector", 16),
    Column("decisions", "Decisions", 10),
    Column("confirms", "Confirm", 9),
    Column("rejects", "Reject", 9),
    Column("corrections", "Correct", 9),
    Column("active_hours", "Active hours", 10),
    Column("decisions_per_hour", figures.heading("decisions_per_hour"), 11, "0.00"),
    Column("avg_frame_to_decision_s", figures.heading("avg_frame_to_decision_s"), 14, SECONDS),
    Column("avg_time_spent_s", figures.heading("avg_time_spent_s"), 12, SECONDS),
    _rate("correction_share", 12),
    _rate("reject_share", 11),
]

# The raw inspection columns, shared by the workbook's raw sheet and the CSV.
RAW_COLUMNS = [
    Column("id", "Inspection", 11, unique=True),
    Column("captured_at", "Captured (plant time)", 20, unique=True),
    Column("date", "Date", 11),
    Column("shift", "Shift", 9),
    Column("shift_date", "Shift date", 11),
    Column("line", "Line", 10),
    Column("station", "Station", 10),
    Column("product", "Product", 10),
    Column("model_version", "Model version", 14),
    Column("verdict", "Verdict", 8),
    Column("confidence", "Confidence", 10, unique=True),
    Column("model_defect_type", "Model's defect type", 14),
    Column("review_status", "Review status", 12),
    Column("review_reason", "Review reason", 14),
    Column("final_defect_type", "Final defect type", 14),
    Column("defective", "Defective", 9),
    Column("verified_at", "Verified at (plant time)", 20, unique=True),
    Column("serial", "Serial", 14, unique=True),
    Column("lot", "Lot", 12),
]
LOG_COLUMNS = [
    Column("decided_at", "Decided at (plant time)", 20, unique=True),
    Column("inspection", "Inspection", 11, unique=True),
    Column("captured_at", "Captured (plant time)", 20, unique=True),
    Column("line", "Line", 10),
    Column("station", "Station", 10),
    Column("model_version", "Model version", 14),
    Column("model_defect_type", "Model's defect type", 14),
    Column("inspector", "Inspector", 14),
    Column("decision", "Decision", 10),
    Column("final_defect_type", "Final defect type", 14),
    Column("time_spent_s", "Time on frame (s)", 12),
    Column("frame_to_decision_s", "Frame to decision (s)", 14, unique=True),
    Column("comment", "Comment", 40, unique=True),
    Column("undone_by", "Undone by", 14),
    Column("undone_at", "Undone at (plant time)", 20, unique=True),
]

_zones: dict[str, zoneinfo.ZoneInfo] = {}


def _zone(name: str) -> zoneinfo.ZoneInfo:
    zone = _zones.get(name)
    if zone is None:
        zone = _zones[name] = zoneinfo.ZoneInfo(name)
    return zone


def _local(value: dt.datetime | None, zone_name: str) -> dt.datetime | None:
    """An aware datetime as wall-clock time in the plant's zone."""
    return value.astimezone(_zone(zone_name)) if value is not None else None


def export_filename(params: Mapping[str, str], extension: str = "xlsx") -> str:
    """A download's name from its filters' query parameters (as a job stores them).

    E.g. linesight-report-2026-03-28-to-2026-03-29.xlsx.
    """
    return f"linesight-report-{params['from']}-to-{params['to']}.{extension}"


# --- Rows ------------------------------------------------------------------------


def raw_inspection_rows(filters: ReportFilters) -> Iterator[list]:
    """Every selected inspection in ``RAW_COLUMNS`` order, times aware in the plant's zone."""
    for (
        pk,
        zone,
        captured_at,
        local_date,
        shift,
        shift_date,
        line,
        station,
        product,
        model,
        number,
        verdict,
        confidence,
        defect_type,
        review_status,
        review_reason,
        final_defect_type,
        final_is_defect,
        verified_at,
        serial,
        lot,
    ) in selectors.inspection_rows(filters):
        yield [
            pk,
            _local(captured_at, zone),
            local_date,
            shift,
            shift_date,
            line,
            station,
            product,
            version_label(model, number),
            verdict,
            confidence,
            defect_type,
            review_status,
            review_reason or None,
            final_defect_type,
            final_is_defect,
            _local(verified_at, zone),
            serial or None,
            lot or None,
        ]


def verification_log_rows(filters: ReportFilters) -> Iterator[list]:
    """Every decision on the selected inspections in ``LOG_COLUMNS`` order, undone ones marked."""
    for (
        zone,
        created_at,
        inspection_id,
        captured_at,
        line,
        station,
        model,
        number,
        model_defect_type,
        inspector,
        decision,
        final_defect_type,
        time_spent_ms,
        comment,
        undone_at,
    ) in selectors.verification_rows(filters):
        yield [
            _local(created_at, zone),
            inspection_id,
            _local(captured_at, zone),
            line,
            station,
            version_label(model, number),
            model_defect_type,
            inspector,
            decision,
            final_defect_type,
            time_spent_ms / 1000 if time_spent_ms is not None else None,
            (created_at - captured_at).total_seconds(),
            comment or None,
            inspector if undone_at is not None else None,  # only its own inspector undoes it
            _local(undone_at, zone),
        ]


# --- CSV -------------------------------------------------------------------------


class _Line:
    """A file-like object whose write() hands back what csv.writer gives it."""

    def write(self, value: str) -> str:
        return value


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _csv_text(value: str | None) -> str:
    # Spreadsheet programs run a cell that starts like a formula; quote it.
    if value and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value or ""


def csv_row_count(filters: ReportFilters) -> int:
    """Rows the CSV would hold: one per selected inspection."""
    return selectors.inspections(filters).count()


def csv_chunks(filters: ReportFilters, *, lines_per_chunk: int = 500) -> Iterator[bytes]:
    """The CSV of every selected inspection, UTF-8, in chunks of ``lines_per_chunk`` lines."""
    return _csv_encoded(raw_inspection_rows(filters), lines_per_chunk)


def _csv_encoded(rows: Iterable[list], lines_per_chunk: int = 500) -> Iterator[bytes]:
    writer = csv.writer(_Line())
    yield writer.writerow([column.key for column in RAW_COLUMNS]).encode()
    buffer: list[str] = []
    serial_index = len(RAW_COLUMNS) - 2
    for row in rows:
        values = [_csv_value(value) for value in row[:serial_index]]
        values.append(_csv_text(row[serial_index]))
        values.append(_csv_text(row[serial_index + 1]))
        buffer.append(writer.writerow(values))
        if len(buffer) >= lines_per_chunk:
            yield "".join(buffer).encode()
            buffer = []
    if buffer:
        yield "".join(buffer).encode()


def write_csv(
    filters: ReportFilters, target: IO[bytes], *, on_rows: Callable[[int], None] | None = None
) -> int:
    """Write the CSV to a binary file, chunk by chunk; returns the rows written.

    ``on_rows(done)`` is called every ``PROGRESS_EVERY_ROWS`` rows (a background job's progress).
    """
    written = 0

    def rows() -> Iterator[list]:
        nonlocal written
        for row in raw_inspection_rows(filters):
            written += 1
            yield row

    for chunk in _csv_encoded(_counted(rows(), 0, on_rows)):
        target.write(chunk)
    return written


# --- Workbook --------------------------------------------------------------------

BOLD = Font(bold=True)
TITLE = Font(bold=True, size=14)
HEADER_FILL = PatternFill("solid", fgColor="DDE3EC")
WRAP = Alignment(wrap_text=True, vertical="top")


class _Book:
    """A write-only workbook with helpers for headed, filtered, frozen tables."""

    def __init__(self) -> None:
        self.workbook = Workbook(write_only=True)

    def sheet(self, title: str, widths: Iterable[float] = ()) -> WriteOnlyWorksheet:
        sheet = self.workbook.create_sheet(title)
        for index, width in enumerate(widths, start=1):
            sheet.column_dimensions[get_column_letter(index)].width = width
        return sheet

    def cell(self, sheet, value, *, number_format=None, font=None, fill=None, alignment=None):
        cell = WriteOnlyCell(sheet, value=value)
        if number_format:
            cell.number_format = number_format
        if font:
            cell.font = font
        if fill:
            cell.fill = fill
        if alignment:
            cell.alignment = alignment
        return cell

    def header(self, sheet, columns: list[Column]) -> list:
        return [self.cell(sheet, column.heading, font=BOLD, fill=HEADER_FILL) for column in columns]

    def table(self, title: str, columns: list[Column], rows: Iterable[dict]) -> tuple[Any, int]:
        """A sheet holding one small table of dict rows; returns it and its row count."""
        sheet = self.sheet(title, [column.width for column in columns])
        sheet.freeze_panes = "A2"
        sheet.append(self.header(sheet, columns))
        count = 0
        for row in rows:
            sheet.append(
                [
                    self.cell(sheet, row[column.key], number_format=column.number_format)
                    if column.number_format and row[column.key] is not None
                    else row[column.key]
                    for column in columns
                ]
            )
            count += 1
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{count + 1}"
        return sheet, count

    def row_sheets(self, title: str, columns: list[Column], rows: Iterable[list]) -> int:
        """Long row sheets, streamed; continued on "<title> 2", ... past Excel's row limit."""
        parts = [self._row_sheet(title, columns)]
        for row in rows:
            if parts[-1].count == MAX_SHEET_ROWS:
                parts.append(self._row_sheet(f"{title} {len(parts) + 1}", columns))
            parts[-1].append(row)
        for part in parts:
            part.sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{part.count + 1}"
        return sum(part.count for part in parts)

    def _row_sheet(self, title: str, columns: list[Column]) -> FastRows:
        sheet = self.sheet(title, [column.width for column in columns])
        sheet.freeze_panes = "A2"
        return FastRows(sheet, self.header(sheet, columns), [not c.unique for c in columns])


def write_workbook(
    filters: ReportFilters,
    target: str | IO[bytes],
    *,
    on_rows: Callable[[int], None] | None = None,
) -> int:
    """Write the report workbook to a path or binary file; returns the raw rows written.

    Sheets: Summary (filters, totals, definitions), Daily trend with a line
    chart, By shift / line / station / product, Pareto with a bar chart,
    Model versions, Lab against line, Precision recall, Confusion matrix, Agreement by day,
    Inspectors, Verification log and every inspection. ``on_rows(done)`` is
    called every ``PROGRESS_EVERY_ROWS`` raw rows (a background job's progress).
    """
    book = _Book()
    _summary_sheet(book, filters)

    daily = selectors.volume(filters, by="day")
    sheet, count = book.table("Daily trend", DIMENSION_COLUMNS["day"] + VOLUME_COLUMNS, daily)
    _daily_chart(sheet, count)
    for by, title in (
        ("shift", "By shift"),
        ("line", "By line"),
        ("station", "By station"),
        ("product", "By product"),
    ):
        columns = DIMENSION_COLUMNS[by] + VOLUME_COLUMNS
        book.table(title, columns, selectors.volume(filters, by=by))

    sheet, count = book.table("Pareto", PARETO_COLUMNS, selectors.pareto(filters))
    _pareto_chart(sheet, count)

    versions = selectors.model_versions(filters)
    book.table("Model versions", VERSION_COLUMNS, versions)
    book.table("Lab against line", LAB_COLUMNS, selectors.lab_against_line(versions))
    book.table(
        "Precision recall",
        PRECISION_COLUMNS,
        (
            {"model_version": version["model_version"], **per_type}
            for version in versions
            for per_type in version["per_defect_type"]
        ),
    )
    _confusion_sheet(book, versions)
    book.table("Agreement by day", AGREEMENT_COLUMNS, selectors.agreement_by_day(filters))
    book.table("Inspectors", INSPECTOR_COLUMNS, selectors.inspectors(filters))

    log = _counted(verification_log_rows(filters), 0, on_rows)
    rows = book.row_sheets("Verification log", LOG_COLUMNS, log)
    inspections = _counted(raw_inspection_rows(filters), rows, on_rows)
    rows += book.row_sheets("Inspections", RAW_COLUMNS, inspections)
    book.workbook.save(target)
    return rows


def _counted(rows: Iterator[list], before: int, on_rows: Callable[[int], None] | None):
    """The rows as they are, telling ``on_rows`` the running total every so many."""
    if on_rows is None:
        yield from rows
        return
    for done, row in enumerate(rows, start=before + 1):
        if done % PROGRESS_EVERY_ROWS == 0:
            on_rows(done)
        yield row


def _summary_sheet(book: _Book, filters: ReportFilters) -> None:
    sheet = book.sheet("Summary", [28, 22, 90])
    cell = book.cell
    sheet.append([cell(sheet, "LineSight report", font=TITLE)])
    generated = timezone.now().astimezone(filters.time_zone).replace(tzinfo=None, microsecond=0)
    sheet.append(["Generated", cell(sheet, generated, number_format=DATETIME)])
    sheet.append([])
    sheet.append([cell(sheet, "Filters", font=BOLD)])
    for label, value in filters.described():
        sheet.append([label, value])
    sheet.append([])
    sheet.append([cell(sheet, "Totals", font=BOLD)])
    totals = selectors.totals(filters)
    for column in VOLUME_COLUMNS:
        value = totals[column.key]
        sheet.append(
            [
                column.heading,
                cell(sheet, value, number_format=column.number_format)
                if column.number_format and value is not None
                else value,
                figures.DEFINITIONS[column.key][1],
            ]
        )
    sheet.append([])
    sheet.append([cell(sheet, "Definitions", font=BOLD)])
    for key, (name, text) in figures.DEFINITIONS.items():
        if key not in totals:
            sheet.append([name, None, cell(sheet, text, alignment=WRAP)])


def _daily_chart(sheet, count: int) -> None:
    chart = LineChart()
    chart.title = "Defect rate and first-pass yield by day"
    chart.y_axis.title = "Share of frames"
    chart.y_axis.number_format = "0%"
    chart.x_axis.number_format = "yyyy-mm-dd"
    chart.height, chart.width = 9, 22
    rate = [c.key for c in DIMENSION_COLUMNS["day"] + VOLUME_COLUMNS].index("defect_rate") + 1
    fpy = [c.key for c in DIMENSION_COLUMNS["day"] + VOLUME_COLUMNS].index("first_pass_yield") + 1
    last = max(count, 1) + 1
    for column in (rate, fpy):
        chart.add_data(
            Reference(sheet, min_col=column, min_row=1, max_row=last), titles_from_data=True
        )
    chart.set_categories(Reference(sheet, min_col=1, min_row=2, max_row=last))
    sheet.add_chart(chart, "N2")


def _pareto_chart(sheet, count: int) -> None:
    last = max(count, 1) + 1
    bars = BarChart()
    bars.type = "col"
    bars.title = "Confirmed defects by type (Pareto)"
    bars.y_axis.title = "Confirmed defects"
    bars.height, bars.width = 9, 18
    bars.add_data(Reference(sheet, min_col=4, min_row=1, max_row=last), titles_from_data=True)
    bars.set_categories(Reference(sheet, min_col=1, min_row=2, max_row=last))
    cumulative = LineChart()
    cumulative.add_data(Reference(sheet, min_col=6, min_row=1, max_row=last), titles_from_data=True)
    cumulative.y_axis.axId = 200
    cumulative.y_axis.title = "Cumulative share"
    cumulative.y_axis.number_format = "0%"
    cumulative.y_axis.crosses = "max"
    bars += cumulative
    sheet.add_chart(bars, "I2")


def _confusion_sheet(book: _Book, versions: list[dict]) -> None:
    width = max((len(v["labels"]) for v in versions), default=1)
    sheet = book.sheet("Confusion matrix", [26] + [14] * width)
    cell = book.cell
    row_number = 0
    for version in versions:
        sheet.append(
            [
                cell(
                    sheet,
                    f"{version['model_version']}: model (rows) against inspector (columns), "
                    "verified frames",
                    font=BOLD,
                )
            ]
        )
        names = [label or "no defect" for label in version["labels"]]
        sheet.append(
            [cell(sheet, "Model \\ Inspector", font=BOLD, fill=HEADER_FILL)]
            + [cell(sheet, name, font=BOLD, fill=HEADER_FILL) for name in names]
        )
        first = row_number + 3
        for name, counts in zip(names, version["matrix"], strict=True):
            sheet.append([cell(sheet, name, font=BOLD), *counts])
        last = first + len(names) - 1
        sheet.conditional_formatting.add(
            f"B{first}:{get_column_letter(len(names) + 1)}{last}",
            ColorScaleRule(
                start_type="min", start_color="FFFFFF", end_type="max", end_color="2E6FDB"
            ),
        )
        sheet.append([])
        row_number = last + 1
    if not versions:
        sheet.append(["No verified frames in this period."])
