"""The fast row writer (openpyxl's private stream) reads back as openpyxl's own append writes."""

import datetime as dt
import io
import zoneinfo

import openpyxl
import pytest
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from reports.xlsx_rows import DATE, DATETIME, FastRows, clean_text

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
HEADINGS = ["Id", "When", "Day", "Code", "Confidence", "Defective", "Text"]
REPEATS = [False, False, True, True, False, True, False]
ROWS = [
    [
        1,
        dt.datetime(2026, 3, 29, 3, 30, 15, tzinfo=PARIS),
        dt.date(2026, 3, 29),
        "crack",
        0.9731,
        True,
        '=HYPERLINK("http://evil.example","x")',
    ],
    [2, dt.datetime(2026, 3, 29, 4, 0), dt.date(2026, 3, 29), "crack", 1e-7, False, "  padded "],
    [3, None, dt.date(2026, 3, 30), "", 0.5, None, "a < b & c > d\x07bell"],
    [2**40, dt.datetime(1999, 12, 31, 23, 59, 59), dt.date(1900, 3, 1), "scratch", 0.0, True, "é"],
]


def header(sheet):
    return [WriteOnlyCell(sheet, value=heading) for heading in HEADINGS]


def styled_header(sheet):
    cells = header(sheet)
    for cell in cells:
        cell.font = Font(bold=True)
    return cells


def public_cell(sheet, value):
    """What openpyxl's own write-only API writes for a value of the raw sheets."""
    if isinstance(value, dt.datetime):
        cell = WriteOnlyCell(sheet, value=value.replace(tzinfo=None))
        cell.number_format = DATETIME
        return cell
    if isinstance(value, dt.date):
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = DATE
        return cell
    if isinstance(value, str):
        cell = WriteOnlyCell(sheet, value=clean_text(value) or None)
        cell.data_type = "s"  # text stays text, never a formula
        return cell
    return value


def read_back(write) -> list[list[tuple]]:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Rows")
    write(sheet)
    stream = io.BytesIO()
    book.save(stream)
    stream.seek(0)
    loaded = openpyxl.load_workbook(stream)["Rows"]
    return [
        [(cell.value, cell.data_type, cell.number_format, cell.font.b) for cell in row]
        for row in loaded.iter_rows()
    ]


def fast(sheet):
    rows = FastRows(sheet, styled_header(sheet), REPEATS)
    for values in ROWS:
        rows.append(values)
    assert rows.count == len(ROWS)


def public(sheet):
    sheet.append(styled_header(sheet))
    for values in ROWS:
        sheet.append([public_cell(sheet, value) for value in values])


def test_fast_rows_read_back_as_openpyxls_own_append_writes_them():
    written = read_back(fast)
    assert written == read_back(public)
    assert [value for value, *_ in written[0]] == HEADINGS
    assert all(bold for *_, bold in written[0])  # the header keeps its style
    first = written[1]
    assert first[1][:3] == (dt.datetime(2026, 3, 29, 3, 30, 15), "d", DATETIME)  # wall clock
    assert first[2][:3] == (dt.datetime(2026, 3, 29), "d", DATE)
    assert first[6][:2] == ('=HYPERLINK("http://evil.example","x")', "s")
    assert written[2][6][0] == "  padded "
    assert written[3][6][0] == "a < b & c > dbell"  # the control character xlsx cannot hold


def test_repeated_values_written_from_the_cache_land_in_their_own_row():
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Rows")
    rows = FastRows(sheet, header(sheet), REPEATS)
    for number in range(3):
        rows.append([number, None, dt.date(2026, 3, 29), "crack", 0.5, True, f"n{number}"])
    stream = io.BytesIO()
    book.save(stream)
    loaded = openpyxl.load_workbook(stream)["Rows"]
    assert [row[3].coordinate for row in loaded.iter_rows(min_row=2)] == ["D2", "D3", "D4"]
    assert [row[3].value for row in loaded.iter_rows(min_row=2)] == ["crack"] * 3


def test_a_value_with_no_spreadsheet_form_is_refused():
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Rows")
    rows = FastRows(sheet, header(sheet), REPEATS)
    with pytest.raises(TypeError, match="No spreadsheet form for time"):
        rows.append([1, None, None, None, None, None, dt.time(3, 30)])
    book.save(io.BytesIO())  # the rows before it still make a workbook
    assert rows.count == 0
