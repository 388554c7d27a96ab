"""An evaluation as an xlsx workbook: its figures, confusion matrices, calibration, what the
line would have seen, and one row per image, through the report export's write-only helpers.

The per-image sheet is streamed (database iterators merged by image, rows written by
``reports.xlsx_rows.FastRows``), so memory holds a few rows however large the split.
"""

from collections.abc import Iterable, Iterator
from typing import IO

from django.utils import timezone
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.formatting.rule import ColorScaleRule
from openpyxl.utils import get_column_letter

from models_registry.evaluation.models import Evaluation, EvaluationResult
from reports.exports import BOLD, HEADER_FILL, PERCENT, TITLE, Column
from reports.xlsx_rows import DATETIME, FastRows, WriteOnlyWorksheet

CHUNK = 2000
NUMBER = "0.000"
MS = "0.00"

PER_LABEL_COLUMNS = [
    Column("version", "Version", 22),
    Column("label", "Class", 22),
    Column("precision", "Precision", 11, PERCENT),
    Column("recall", "Recall", 11, PERCENT),
    Column("f1", "F1", 9, NUMBER),
    Column("support", "Support", 10),
    Column("predicted", "Predicted as", 12),
]
CALIBRATION_COLUMNS = [
    Column("version", "Version", 22),
    Column("low", "Confidence from", 15, PERCENT),
    Column("high", "to", 9, PERCENT),
    Column("count", "Images", 9),
    Column("confidence", "Mean confidence", 16, PERCENT),
    Column("accuracy", "Share right", 12, PERCENT),
]
IMAGE_COLUMNS = [
    Column("sha256", "sha256", 20, unique=True),
    Column("file", "File", 30, unique=True),
    Column("label", "Dataset label", 16),
    Column("truth", "True class", 16),
    Column("predicted", "Predicted class", 16),
    Column("predicted_label", "Version's label", 16),
    Column("confidence", "Confidence", 11, unique=True),
    Column("correct", "Right", 7),
    Column("latency_ms", "Latency (ms)", 12, unique=True),
    Column("fast_path", "Fast-path label", 16),
    Column("challenger_predicted", "Challenger's class", 18),
    Column("challenger_confidence", "Challenger's confidence", 14, unique=True),
    Column("challenger_correct", "Challenger right", 10),
]


def evaluation_filename(evaluation: Evaluation) -> str:
    version = evaluation.version
    return f"evaluation-{evaluation.pk}-{version.model.name}-v{version.number}.xlsx"


class _Writer:
    """A write-only workbook and the few cell helpers its sheets share."""

    def __init__(self) -> None:
        self.workbook = Workbook(write_only=True)

    def sheet(self, title: str, widths: Iterable[float]) -> WriteOnlyWorksheet:
        sheet = self.workbook.create_sheet(title)
        for index, width in enumerate(widths, start=1):
            sheet.column_dimensions[get_column_letter(index)].width = width
        return sheet

    @staticmethod
    def cell(sheet, value, *, number_format=None, font=None, fill=None) -> WriteOnlyCell:
        cell = WriteOnlyCell(sheet, value=value)
        if number_format and value is not None:
            cell.number_format = number_format
        if font:
            cell.font = font
        if fill:
            cell.fill = fill
        return cell

    def header(self, sheet, headings: Iterable[str]) -> list[WriteOnlyCell]:
        return [self.cell(sheet, text, font=BOLD, fill=HEADER_FILL) for text in headings]

    def table(self, title: str, columns: list[Column], rows: Iterable[dict]) -> None:
        sheet = self.sheet(title, [column.width for column in columns])
        sheet.freeze_panes = "A2"
        sheet.append(self.header(sheet, [column.heading for column in columns]))
        count = 0
        for row in rows:
            sheet.append(
                [self.cell(sheet, row.get(c.key), number_format=c.number_format) for c in columns]
            )
            count += 1
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{count + 1}"


def _versions(evaluation: Evaluation) -> list[tuple[str, dict]]:
    pairs = [(str(evaluation.version), evaluation.metrics)]
    if evaluation.challenger_id:
        pairs.append((str(evaluation.challenger), evaluation.challenger_metrics))
    return pairs


def write_evaluation_workbook(evaluation: Evaluation, target: str | IO[bytes]) -> int:
    """Write ``evaluation`` as a workbook to a path or binary file; returns the image rows.

    Sheets: Summary, Per class, Confusion matrix (shaded), Calibration, Line,
    Images (one row per image, with the challenger's answer beside the champion's).
    """
    writer = _Writer()
    _summary(writer, evaluation)
    versions = _versions(evaluation)
    writer.table(
        "Per class",
        PER_LABEL_COLUMNS,
        (
            {"version": name, "label": label, **figures}
            for name, metrics in versions
            for label, figures in (metrics.get("per_label") or {}).items()
        ),
    )
    _confusion(writer, versions)
    writer.table(
        "Calibration",
        CALIBRATION_COLUMNS,
        (
            {"version": name, **row}
            for name, metrics in versions
            for row in (metrics.get("calibration") or {}).get("bins", [])
        ),
    )
    _line(writer, evaluation)
    sheet = writer.sheet("Images", [column.width for column in IMAGE_COLUMNS])
    sheet.freeze_panes = "A2"
    rows = FastRows(
        sheet,
        writer.header(sheet, [column.heading for column in IMAGE_COLUMNS]),
        [not column.unique for column in IMAGE_COLUMNS],
    )
    for values in image_rows(evaluation):
        rows.append(values)
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(IMAGE_COLUMNS))}{rows.count + 1}"
    writer.workbook.save(target)
    return rows.count


def _summary(writer: _Writer, evaluation: Evaluation) -> None:
    sheet = writer.sheet("Summary", [34, 22, 22])
    cell = writer.cell
    sheet.append([cell(sheet, f"Evaluation {evaluation.pk}", font=TITLE)])
    facts = [
        ("Champion", str(evaluation.version)),
        ("Challenger", str(evaluation.challenger) if evaluation.challenger_id else "—"),
        ("Dataset snapshot", str(evaluation.snapshot)),
        ("Split", evaluation.get_split_display()),
        ("Images", evaluation.image_count),
        ("Classes compared by", evaluation.get_label_space_display()),
        ("State", evaluation.state),
        # Spreadsheets have no time zones: the site's wall-clock time.
        ("Started", timezone.localtime(evaluation.created_at).replace(tzinfo=None, microsecond=0)),
    ]
    for name, value in facts:
        sheet.append(
            [name, cell(sheet, value, number_format=DATETIME)]
            if name == "Started"
            else [name, value]
        )
    sheet.append([])
    versions = _versions(evaluation)
    sheet.append(writer.header(sheet, ["Figure", *(name for name, _ in versions)]))
    figures = [
        ("Accuracy", "accuracy", PERCENT),
        ("Macro-F1", "macro_f1", NUMBER),
        ("Expected calibration error", "ece", NUMBER),
    ]
    for name, key, number_format in figures:
        sheet.append(
            [name, *(cell(sheet, m.get(key), number_format=number_format) for _, m in versions)]
        )
    sheet.append(
        [
            "Latency p50 (ms)",
            *(
                cell(sheet, (m.get("latency_ms") or {}).get("p50"), number_format=MS)
                for _, m in versions
            ),
        ]
    )
    test = evaluation.paired_test
    if test:
        sheet.append([])
        sheet.append([cell(sheet, "McNemar's test", font=BOLD)])
        for name, key in (
            ("Only the champion right", "only_champion_right"),
            ("Only the challenger right", "only_challenger_right"),
            ("Both right", "both_right"),
            ("Both wrong", "both_wrong"),
            ("Images they label differently", "disagreements"),
            ("Method", "method"),
            ("p-value", "p_value"),
            ("Difference beyond chance (5 %)", "significant"),
        ):
            sheet.append([name, test.get(key)])


def _confusion(writer: _Writer, versions: list[tuple[str, dict]]) -> None:
    width = max(len((m.get("confusion") or {}).get("labels", [])) for _, m in versions)
    sheet = writer.sheet("Confusion matrix", [26] + [14] * max(width, 1))
    cell = writer.cell
    row_number = 0
    for name, metrics in versions:
        confusion = metrics.get("confusion") or {}
        labels, matrix = confusion.get("labels", []), confusion.get("matrix", [])
        sheet.append([cell(sheet, f"{name}: true class (rows) against predicted", font=BOLD)])
        sheet.append(writer.header(sheet, ["True \\ Predicted", *labels]))
        first = row_number + 3
        for label, counts in zip(labels, matrix, strict=True):
            sheet.append([cell(sheet, label, font=BOLD), *counts])
        last = first + len(labels) - 1
        if labels:
            sheet.conditional_formatting.add(
                f"B{first}:{get_column_letter(len(labels) + 1)}{last}",
                ColorScaleRule(
                    start_type="min", start_color="FFFFFF", end_type="max", end_color="2E6FDB"
                ),
            )
        sheet.append([])
        row_number = last + 1


def _line(writer: _Writer, evaluation: Evaluation) -> None:
    line = evaluation.line or {}
    sheet = writer.sheet("Line", [34, 16, 16, 16, 16])
    cell = writer.cell
    outcome = line.get("version")
    if not outcome:
        sheet.append(["Not simulated: a label is not mapped to a defect type or 'no defect'."])
        return
    thresholds = line.get("thresholds") or {}
    sheet.append([cell(sheet, "Thresholds used", font=BOLD)])
    sheet.append(
        [
            "Confidence threshold",
            cell(sheet, thresholds.get("confidence_threshold"), number_format=PERCENT),
        ]
    )
    for code, value in sorted((thresholds.get("defect_thresholds") or {}).items()):
        sheet.append([f"Reject {code} at", cell(sheet, value, number_format=PERCENT)])
    sheet.append([])
    sheet.append(writer.header(sheet, ["What the line would have seen", "Share or count"]))
    for name, value, number_format in (
        ("Pass", outcome["shares"]["pass"], PERCENT),
        ("Fail", outcome["shares"]["fail"], PERCENT),
        ("Review", outcome["shares"]["review"], PERCENT),
        ("Escapes (defects passed)", outcome["escapes"], None),
        ("Escape rate", outcome["escape_rate"], PERCENT),
        ("False rejects", outcome["false_rejects"], None),
        ("False reject rate", outcome["false_reject_rate"], PERCENT),
        ("Review load", outcome["review_load"], PERCENT),
    ):
        sheet.append([name, cell(sheet, value, number_format=number_format)])
    suggestions = outcome.get("suggestions") or {}
    if suggestions:
        target = evaluation.options.get("target_escape_rate")
        sheet.append([])
        sheet.append(
            [
                cell(
                    sheet,
                    f"Reject thresholds for an escape rate of at most {target:.1%}",
                    font=BOLD,
                )
            ]
        )
        sheet.append(
            writer.header(
                sheet, ["Defect type", "Now", "Suggested", "Escape rate then", "Review load then"]
            )
        )
        for code, row in sorted(suggestions.items()):
            sheet.append(
                [code]
                + [
                    cell(sheet, row[key], number_format=PERCENT)
                    for key in ("current", "threshold", "escape_rate", "review_load")
                ]
            )


def _rows(evaluation: Evaluation, version_id: int | None) -> Iterator[EvaluationResult]:
    if version_id is None:
        return iter(())
    return (
        EvaluationResult.objects.filter(evaluation=evaluation, version_id=version_id)
        .select_related("item__image", "item__label")
        .order_by("item_id")
        .iterator(chunk_size=CHUNK)
    )


def image_rows(evaluation: Evaluation) -> Iterator[list]:
    """One list of values per image: the champion's answer, then the challenger's (merged by
    image from two ordered iterators, so neither side is held in memory)."""
    theirs = _rows(evaluation, evaluation.challenger_id)
    other = next(theirs, None)
    for row in _rows(evaluation, evaluation.version_id):
        while other is not None and other.item_id < row.item_id:
            other = next(theirs, None)
        match = other if other is not None and other.item_id == row.item_id else None
        image = row.item.image
        yield [
            image.sha256,
            image.original_name,
            row.item.label.name,
            row.truth,
            row.predicted,
            row.predicted_label,
            round(row.confidence, 6),
            row.correct,
            round(row.latency_ms, 3),
            row.fast_path_predicted,
            match.predicted if match else None,
            round(match.confidence, 6) if match else None,
            match.correct if match else None,
        ]
