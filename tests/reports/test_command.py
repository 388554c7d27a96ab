"""`manage.py export_report` writes the same workbook for scheduled reports."""

import openpyxl
import pytest
from django.core.management import CommandError, call_command

from tests.reports import expected


@pytest.fixture
def out_dir(tmp_path):
    """A folder of its own (tmp_path also holds the test's media)."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def test_export_report_writes_the_workbook_for_a_line(known_plant, out_dir):
    out = out_dir / "l1.xlsx"
    call_command(
        "export_report",
        "--from",
        "2026-03-28",
        "--to",
        "2026-03-29",
        "--line",
        "L1",
        "--out",
        str(out),
    )
    book = openpyxl.load_workbook(out)
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True) if row[0]}
    line = expected.BY_LINE[0]
    assert (summary["Line"], summary["Frames"]) == ("L1", line["frames"])
    assert summary["Defect rate"] == pytest.approx(line["defect_rate"])
    assert summary["First-pass yield"] == pytest.approx(line["first_pass_yield"])
    assert [p.name for p in out_dir.iterdir()] == ["l1.xlsx"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-03-28", "--to", "2026-03-29", "--line", "NOPE"], "Unknown line 'NOPE'."),
        (
            ["--from", "2026-03-29", "--to", "2026-03-28"],
            "'from' (2026-03-29) is after 'to' (2026-03-28).",
        ),
        (["--from", "yesterday", "--to", "2026-03-28"], "'from' must be a date written YYYY-MM-DD"),
        (
            ["--from", "2026-03-28", "--to", "2026-03-29", "--model-version", "cap"],
            "model_version must look like",
        ),
    ],
)
def test_export_report_refuses_bad_filters_and_writes_nothing(known_plant, out_dir, args, message):
    out = out_dir / "report.xlsx"
    with pytest.raises(CommandError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        call_command("export_report", *args, "--out", str(out))
    assert list(out_dir.iterdir()) == []


def test_export_report_refuses_an_unusable_target(known_plant, out_dir):
    with pytest.raises(CommandError, match="does not exist"):
        call_command(
            "export_report",
            "--from",
            "2026-03-28",
            "--to",
            "2026-03-29",
            "--out",
            str(out_dir / "no" / "r.xlsx"),
        )
    with pytest.raises(CommandError, match=r"must name an \.xlsx file"):
        call_command(
            "export_report",
            "--from",
            "2026-03-28",
            "--to",
            "2026-03-29",
            "--out",
            str(out_dir / "r.csv"),
        )
    assert list(out_dir.iterdir()) == []
