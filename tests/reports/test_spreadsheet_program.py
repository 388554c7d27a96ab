"""The workbook opens in a real spreadsheet program (LibreOffice, headless) with its figures."""

import csv
import os
import re
import shutil
import subprocess
import zipfile

import pytest

from reports.exports import write_workbook
from reports.filters import report_filters
from tests.conftest import missing_service
from tests.reports import expected
from tests.reports.conftest import RANGE

SOFFICE = os.environ.get("LINESIGHT_SOFFICE", "/usr/bin/soffice")
# LibreOffice's CSV filter: comma, quote, UTF-8, ..., the last field -1 = every sheet.
ALL_SHEETS_CSV = "csv:Text - txt - csv (StarCalc):44,34,UTF8,1,,0,false,true,false,false,false,-1"


@pytest.fixture
def soffice():
    if not (os.path.exists(SOFFICE) or shutil.which(SOFFICE)):
        missing_service(
            f"No LibreOffice at {SOFFICE}; apt-get install libreoffice-calc-nogui "
            "or set LINESIGHT_SOFFICE"
        )
    return SOFFICE


def sheet(folder, name):
    with open(folder / f"report-{name}.csv", encoding="utf-8") as stream:
        return list(csv.reader(stream))


def number(text):
    return float(text[:-1]) / 100 if text.endswith("%") else float(text)


def convert(soffice, workbook, to, folder):
    subprocess.run(
        [
            soffice,
            "--headless",
            "--norestore",
            f"-env:UserInstallation=file://{folder / 'profile'}",
            "--convert-to",
            to,
            "--outdir",
            str(folder),
            str(workbook),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def test_libreoffice_reads_every_sheet_and_figure(known_plant, soffice, tmp_path):
    workbook = tmp_path / "report.xlsx"
    write_workbook(report_filters(RANGE), str(workbook))
    convert(soffice, workbook, ALL_SHEETS_CSV, tmp_path)
    summary = {row[0]: row[1] for row in sheet(tmp_path, "Summary") if row and row[0]}
    assert summary["Frames"] == str(expected.TOTALS["frames"])
    assert number(summary["Defect rate"]) == pytest.approx(
        expected.TOTALS["defect_rate"], abs=1e-12
    )
    assert number(summary["First-pass yield"]) == pytest.approx(
        expected.TOTALS["first_pass_yield"], abs=1e-12
    )
    daily = sheet(tmp_path, "Daily trend")
    assert [row[:2] for row in daily[1:]] == [["2026-03-28", "7"], ["2026-03-29", "6"]]
    by_shift = sheet(tmp_path, "By shift")
    assert [row[:4] for row in by_shift[1:]] == [
        [row["shift_date"].isoformat(), row["plant"], row["shift"], str(row["frames"])]
        for row in expected.BY_SHIFT
    ]
    pareto = sheet(tmp_path, "Pareto")
    assert [row[0] for row in pareto[1:]] == ["crack", "scratch"]
    assert [row[3] for row in pareto[1:]] == ["4", "2"]
    matrix = sheet(tmp_path, "Confusion matrix")
    assert matrix[1] == ["Model \\ Inspector", "no defect", "crack", "scratch"]
    assert [[int(x) for x in row[1:4]] for row in matrix[2:5]] == expected.MODEL_VERSIONS[0][
        "matrix"
    ]
    raw = sheet(tmp_path, "Inspections")
    assert len(raw) == 1 + expected.TOTALS["frames"]
    f6 = next(row for row in raw if row[1] == "2026-03-29 03:30:00")  # after the DST change
    assert (f6[3], f6[4], f6[14], f6[15]) == ("Night", "2026-03-28", "crack", "TRUE")
    log = sheet(tmp_path, "Verification log")
    assert len(log) == 1 + expected.VERIFICATION_LOG_SIZE


def test_libreoffice_loads_the_charts(known_plant, soffice, tmp_path):
    workbook = tmp_path / "report.xlsx"
    write_workbook(report_filters(RANGE), str(workbook))
    convert(soffice, workbook, "ods", tmp_path)
    with zipfile.ZipFile(tmp_path / "report.ods") as ods:
        charts = sorted(
            re.search(r'chart:class="chart:(\w+)"', ods.read(name).decode())[1]
            for name in ods.namelist()
            if re.fullmatch(r"Object \d+/content.xml", name)
        )
        drawn = [name for name in ods.namelist() if name.startswith("ObjectReplacements/")]
    assert charts == ["bar", "line"]  # the Pareto (bars + cumulative line) and the daily trend
    assert len(drawn) == 2
