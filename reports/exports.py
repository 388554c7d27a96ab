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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from django.utils import timezone
from lxml import etree
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.formatting.rule import ColorScaleRule
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from reports import figures, selectors
from reports.filters import ReportFilters

# Excel holds 1,048,576 rows a sheet; longer row sheets continue on "<title> 2", ...
MAX_SHEET_ROWS = 1_048_575
PERCENT = "0.0%"
DATE = "yyyy-mm-dd"
DATETIME = "yyyy-mm-dd hh:mm:ss"
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


def _clean_text(value: str) -> str:
    """Text typed by people or devices, without the control characters xlsx cannot hold."""
    if ILLEGAL_CHARACTERS_RE.search(value):
        return ILLEGAL_CHARACTERS_RE.sub("", value)
    return value


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
            f"{model} v{number}",
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
    """Every decision on the selected inspections in ``LOG_COLUMNS`` order."""
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
    ) in selectors.verification_rows(filters):
        yield [
            _local(created_at, zone),
            inspection_id,
            _local(captured_at, zone),
            line,
            station,
            f"{model} v{number}",
            model_defect_type,
            inspector,
            decision,
            final_defect_type,
            time_spent_ms / 1000 if time_spent_ms is not None else None,
            (created_at - captured_at).total_seconds(),
            comment or None,
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


def csv_chunks(filters: ReportFilters, *, lines_per_chunk: int = 500) -> Iterator[bytes]:
    """The CSV of every selected inspection, UTF-8, in chunks of ``lines_per_chunk`` lines."""
    writer = csv.writer(_Line())
    yield writer.writerow([column.key for column in RAW_COLUMNS]).encode()
    buffer: list[str] = []
    serial_index = len(RAW_COLUMNS) - 2
    for row in raw_inspection_rows(filters):
        values = [_csv_value(value) for value in row[:serial_index]]
        values.append(_csv_text(row[serial_index]))
        values.append(_csv_text(row[serial_index + 1]))
        buffer.append(writer.writerow(values))
        if len(buffer) >= lines_per_chunk:
            yield "".join(buffer).encode()
            buffer = []
    if buffer:
        yield "".join(buffer).encode()


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
        total, sheet, part = 0, None, 1
        for row in rows:
            if sheet is None or sheet.count == MAX_SHEET_ROWS:
                if sheet is not None:
                    sheet.close()
                    part += 1
                sheet = _RowSheet(self, title if part == 1 else f"{title} {part}", columns)
            sheet.append(row)
            total += 1
        if sheet is None:  # no rows: the header alone
            sheet = _RowSheet(self, title, columns)
        sheet.close()
        return total


EXCEL_EPOCH = dt.datetime(1899, 12, 30)
EXCEL_EPOCH_DATE = EXCEL_EPOCH.date()
DAY = dt.timedelta(days=1)


def _xml_text(value: str) -> str:
    value = _clean_text(value)
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _RowSheet:
    """A write-only sheet fed whole ``<row>`` elements, for the sheets of every row.

    openpyxl's ``append`` makes a cell object per value and writes it through
    nested XML contexts, about 3,000 rows/s for a 19-column sheet here. These
    sheets hold only plain values, so each row is serialised in one string and
    handed to the worksheet's own lxml stream (the generator ``append`` uses
    internally), at several times the speed. Everything else (frozen header,
    column widths, autofilter, styles, the zip) stays openpyxl's. Text is
    always written as text: a value starting with '=' never becomes a formula.
    """

    def __init__(self, book: _Book, title: str, columns: list[Column]) -> None:
        self.sheet = book.sheet(title, [column.width for column in columns])
        self.sheet.freeze_panes = "A2"
        self.letters = [get_column_letter(i) for i in range(1, len(columns) + 1)]
        self.header_style = book.cell(self.sheet, "", font=BOLD, fill=HEADER_FILL).style_id
        self.datetime_style = book.cell(self.sheet, None, number_format=DATETIME).style_id
        self.date_style = book.cell(self.sheet, None, number_format=DATE).style_id
        # Values that repeat (codes, dates, choices) are serialised once per sheet.
        self.caches = [None if column.unique else {} for column in columns]
        self.count = 0
        self.sheet._get_writer()
        self.stream = self._rows(self.sheet)
        next(self.stream)
        self.sheet._rows = self.stream  # close() ends the stream and writes the tail
        header = "".join(
            f'<c r="{letter}1" s="{self.header_style}" t="inlineStr"><is><t>'
            f"{_xml_text(column.heading)}</t></is></c>"
            for letter, column in zip(self.letters, columns, strict=True)
        )
        self.stream.send(etree.fromstring(f'<row r="1">{header}</row>'))
        self.row_number = 1

    @staticmethod
    def _rows(sheet):
        xf = sheet._writer.xf.send(True)
        with xf.element("sheetData"):
            try:
                while True:
                    xf.write((yield))
            except GeneratorExit:
                pass
        sheet._writer.xf.send(None)

    def append(self, values: list) -> None:
        self.row_number += 1
        number = str(self.row_number)
        cells = []
        for letter, value, cache in zip(self.letters, values, self.caches, strict=True):
            if value is None or value == "":
                continue
            tail = cache.get(value) if cache is not None else None
            if tail is None:
                tail = self._cell_tail(value)
                if cache is not None and len(cache) < 10_000:
                    cache[value] = tail
            cells.append(f'<c r="{letter}{number}"{tail}')
        self.stream.send(etree.fromstring(f'<row r="{number}">{"".join(cells)}</row>'))
        self.count += 1

    def _cell_tail(self, value) -> str:
        """A cell's XML after its reference: type, style and value."""
        if isinstance(value, str):
            space = ' xml:space="preserve"' if value != value.strip() else ""
            return f' t="inlineStr"><is><t{space}>{_xml_text(value)}</t></is></c>'
        if isinstance(value, bool):
            return f' t="b"><v>{int(value)}</v></c>'
        if isinstance(value, int | float):  # numbers are the default cell type
            return f"><v>{value!r}</v></c>"
        if isinstance(value, dt.datetime):
            serial = (value.replace(tzinfo=None) - EXCEL_EPOCH) / DAY
            return f' s="{self.datetime_style}"><v>{serial!r}</v></c>'
        if isinstance(value, dt.date):
            return f' s="{self.date_style}"><v>{(value - EXCEL_EPOCH_DATE).days}</v></c>'
        raise TypeError(f"No spreadsheet form for {type(value).__name__}")

    def close(self) -> None:
        self.sheet.auto_filter.ref = f"A1:{self.letters[-1]}{self.count + 1}"


def write_workbook(filters: ReportFilters, target: str | IO[bytes]) -> int:
    """Write the report workbook to a path or binary file; returns the raw rows written.

    Sheets: Summary (filters, totals, definitions), Daily trend with a line
    chart, By shift / line / station / product, Pareto with a bar chart,
    Model versions, Precision recall, Confusion matrix, Agreement by day,
    Inspectors, Verification log and every inspection.
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

    rows = book.row_sheets("Verification log", LOG_COLUMNS, verification_log_rows(filters))
    rows += book.row_sheets("Inspections", RAW_COLUMNS, raw_inspection_rows(filters))
    book.workbook.save(target)
    return rows


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
