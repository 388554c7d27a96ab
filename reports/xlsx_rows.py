"""Fast rows for openpyxl write-only sheets: the only code that uses openpyxl's private API.

``sheet.append`` makes a cell object per value and writes it through nested
XML contexts. For the long row sheets of an export (19 columns)
``benchmarks/reports_bench.py --writers`` measured about 6,500 rows/s through
the public write-only API (``WriteOnlyCell`` for dates and for text kept as
text, ``sheet.append``; 9,000 with no styles at all) against about 28,000
rows/s here (CPU time, 200,000 rows): too slow for workbooks built within a
request. So each row is serialised as one string and handed to the sheet's own
lxml stream, the stream ``append`` itself writes to. Everything else (header
styles, column widths, frozen panes, autofilter, the zip) stays public
openpyxl. openpyxl is pinned below 4 (pyproject.toml), and
``tests/reports/test_xlsx_rows.py`` reads back every kind of value written
here and through ``sheet.append`` and finds them equal, so a change of the
internals fails there.
"""

import datetime as dt
from collections.abc import Generator, Sequence

from lxml import etree
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

DATE = "yyyy-mm-dd"
DATETIME = "yyyy-mm-dd hh:mm:ss"
EXCEL_EPOCH = dt.datetime(1899, 12, 30)
EXCEL_EPOCH_DATE = EXCEL_EPOCH.date()
DAY = dt.timedelta(days=1)
CACHE_LIMIT = 10_000  # distinct values remembered per column


def clean_text(value: str) -> str:
    """Text typed by people or devices, without the control characters xlsx cannot hold."""
    if ILLEGAL_CHARACTERS_RE.search(value):
        return ILLEGAL_CHARACTERS_RE.sub("", value)
    return value


def _xml_text(value: str) -> str:
    value = clean_text(value)
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _SheetDataStream:
    """The private part: the ``<sheetData>`` stream of a write-only sheet, fed ``<row>`` XML.

    Written as openpyxl 3.1's ``WriteOnlyWorksheet._write_rows`` writes; the
    sheet's ``close()`` (called by ``workbook.save``) ends the stream and
    writes the sheet's tail as it does for rows it appended itself.
    """

    def __init__(self, sheet: WriteOnlyWorksheet) -> None:
        sheet._get_writer()
        self._rows = self._feed(sheet)
        next(self._rows)
        sheet._rows = self._rows

    @staticmethod
    def _feed(sheet: WriteOnlyWorksheet) -> Generator[None, etree._Element, None]:
        xf = sheet._writer.xf.send(True)
        with xf.element("sheetData"):
            try:
                while True:
                    xf.write((yield))
            except GeneratorExit:
                pass
        sheet._writer.xf.send(None)

    def write(self, row_xml: str) -> None:
        self._rows.send(etree.fromstring(row_xml))


class FastRows:
    """Appends rows of plain values (text, numbers, booleans, dates) to a new write-only sheet.

    Row 1 is the header (styled cells); text is always written as text, so a
    value starting with '=' never becomes a formula. Datetimes are written as
    their wall-clock time (Excel has no time zones). ``repeats[i]`` says whether
    column i's values repeat (codes, dates, choices): those are serialised once.
    """

    def __init__(
        self, sheet: WriteOnlyWorksheet, header: Sequence[WriteOnlyCell], repeats: Sequence[bool]
    ) -> None:
        self.sheet = sheet
        self.letters = [get_column_letter(i) for i in range(1, len(header) + 1)]
        self.datetime_style = _style_id(sheet, DATETIME)
        self.date_style = _style_id(sheet, DATE)
        self.caches = [{} if repeat else None for repeat in repeats]
        self.stream = _SheetDataStream(sheet)
        self.stream.write(
            '<row r="1">'
            + "".join(
                f'<c r="{letter}1" s="{cell.style_id}" t="inlineStr"><is><t>'
                f"{_xml_text(str(cell.value))}</t></is></c>"
                for letter, cell in zip(self.letters, header, strict=True)
            )
            + "</row>"
        )
        self.count = 0  # rows below the header

    def append(self, values: Sequence) -> None:
        number = str(self.count + 2)
        cells = []
        for letter, value, cache in zip(self.letters, values, self.caches, strict=True):
            if value is None or value == "":
                continue
            tail = cache.get(value) if cache is not None else None
            if tail is None:
                tail = self._cell_tail(value)
                if cache is not None and len(cache) < CACHE_LIMIT:
                    cache[value] = tail
            cells.append(f'<c r="{letter}{number}"{tail}')
        self.stream.write(f'<row r="{number}">{"".join(cells)}</row>')
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


def _style_id(sheet: WriteOnlyWorksheet, number_format: str) -> int:
    cell = WriteOnlyCell(sheet)
    cell.number_format = number_format
    return cell.style_id
