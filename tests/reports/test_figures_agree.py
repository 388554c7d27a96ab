"""The same figures, worked out by hand, on the page, in the JSON, the workbook and the CSV."""

import csv
import datetime as dt
import io
from collections import Counter

import lxml.html
import openpyxl
import pytest

from reports import exports
from tests import factories
from tests.reports import expected
from tests.reports.conftest import RANGE


def approx_rows(rows):
    """Expected rows with floats compared to 1e-12, exact everywhere else."""
    return [
        {
            key: pytest.approx(value, rel=1e-12) if isinstance(value, float) else value
            for key, value in row.items()
        }
        for row in rows
    ]


def pick(rows, keys):
    return [{key: row.get(key) for key in keys} for row in rows]


def as_json(value):
    if isinstance(value, dict):
        return {key: as_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_json(item) for item in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


@pytest.fixture
def viewer_client(client, known_plant):
    client.force_login(factories.viewer())
    return client


# --- Page ---------------------------------------------------------------------


def test_page_context_holds_every_hand_worked_figure(viewer_client):
    response = viewer_client.get("/reports/", RANGE)
    assert response.status_code == 200
    context = response.context
    assert context["totals"] == approx_rows([expected.TOTALS])[0]
    tables = {table["id"]: table["rows"] for table in context["tables"]}
    for by, rows in expected.VOLUME.items():
        assert tables[by] == approx_rows(rows), by
    assert context["pareto"] == approx_rows(expected.PARETO)
    versions = [
        {key: row[key] for key in expected.MODEL_VERSIONS[0] if key != "per_defect_type"}
        for row in context["versions"]
    ]
    assert versions == approx_rows(
        [
            {k: v for k, v in row.items() if k != "per_defect_type"}
            for row in expected.MODEL_VERSIONS
        ]
    )
    for got, want in zip(context["versions"], expected.MODEL_VERSIONS, strict=True):
        assert got["per_defect_type"] == approx_rows(want["per_defect_type"])
    assert context["agreement"] == approx_rows(expected.AGREEMENT)
    assert context["inspectors"] == approx_rows(expected.INSPECTORS)


def _html_table(document, table_id):
    table = document.get_element_by_id(table_id)
    keys = [th.get("data-key") for th in table.xpath(".//thead//th")]
    rows = []
    for tr in table.xpath(".//tbody/tr"):
        cells = tr.xpath("./td")
        if tr.get("class") == "empty":
            continue
        rows.append(
            {
                key: (td.get("data-value"), td.text_content())
                for key, td in zip(keys, cells, strict=True)
            }
        )
    return rows


def _shown(value):
    """What the page prints for a value: percentages to one decimal, a dash for nothing."""
    if value is None:
        return "—"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def test_page_html_shows_the_same_figures(viewer_client):
    document = lxml.html.fromstring(viewer_client.get("/reports/", RANGE).content)
    percent_keys = {
        c.key
        for c in exports.VOLUME_COLUMNS + exports.PARETO_COLUMNS
        if c.number_format == exports.PERCENT
    }
    for by, rows in expected.VOLUME.items():
        shown = _html_table(document, f"table-{by}")
        assert len(shown) == len(rows), by
        for got, want in zip(shown, rows, strict=True):
            for key, value in want.items():
                raw, text = got[key]
                if key in percent_keys:
                    if value is None:
                        assert (raw, text) == ("", "—")
                    else:
                        assert float(raw) == pytest.approx(value, rel=1e-12), (by, key)
                        assert text == f"{value * 100:.1f} %", (by, key)
                else:
                    assert text == _shown(value), (by, key)
    # Totals as cards
    for key, value in expected.TOTALS.items():
        card = document.xpath(f'//*[@id="totals"]/*[@data-key="{key}"]')[0]
        if isinstance(value, float):
            assert float(card.get("data-value")) == pytest.approx(value, rel=1e-12)
            assert card.xpath('./*[@class="value"]')[0].text_content() == f"{value * 100:.1f} %"
        else:
            assert card.xpath('./*[@class="value"]')[0].text_content() == str(value)
    # Pareto, versions, inspectors
    pareto = _html_table(document, "table-pareto")
    assert [row["defect_type"][1] for row in pareto] == ["crack", "scratch"]
    assert [row["confirmed"][1] for row in pareto] == ["4", "2"]
    assert [row["cumulative_share"][1] for row in pareto] == ["66.7 %", "100.0 %"]
    versions = _html_table(document, "table-versions")
    assert [row["false_call_rate"][1] for row in versions] == ["33.3 %", "0.0 %"]
    assert [row["escape_rate"][1] for row in versions] == ["50.0 %", "—"]
    assert [row["agreement"][1] for row in versions] == ["40.0 %", "33.3 %"]
    inspectors = _html_table(document, "table-inspectors")
    assert [row["decisions_per_hour"][1] for row in inspectors] == ["1.25", "1.33"]
    assert [row["avg_frame_to_decision_s"][1] for row in inspectors] == ["2520.0", "4200.0"]
    assert [row["correction_share"][1] for row in inspectors] == ["40.0 %", "75.0 %"]
    # Heat map: v1's row "crack" holds crack→crack 1 (the diagonal) and crack→scratch 1
    heat = document.get_element_by_id("confusion-1")
    cells = {
        (td.get("data-model"), td.get("data-inspector")): int(td.get("data-value"))
        for td in heat.xpath(".//td[@data-model]")
    }
    labels = ["no defect", "crack", "scratch"]
    matrix = expected.MODEL_VERSIONS[0]["matrix"]
    assert cells == {
        (m, i): matrix[r][c] for r, m in enumerate(labels) for c, i in enumerate(labels)
    }


# --- JSON -----------------------------------------------------------------------


def test_json_summary_and_tables_hold_every_hand_worked_figure(viewer_client):
    summary = viewer_client.get("/api/v1/reports/summary/", RANGE).json()
    assert summary["totals"] == approx_rows([expected.TOTALS])[0]
    assert summary["filters"] == {
        "from": "2026-03-28",
        "to": "2026-03-29",
        "plant": None,
        "line": None,
        "station": None,
        "product": None,
        "model_version": None,
        "shift": None,
        "time_zone": "Europe/Paris",
    }
    assert summary["definitions"]["first_pass_yield"] == "First-pass good / Frames."
    for by, rows in expected.VOLUME.items():
        body = viewer_client.get("/api/v1/reports/volume/", {**RANGE, "by": by}).json()
        assert body["by"] == by
        keys = list(rows[0])
        assert pick(body["rows"], keys) == approx_rows(as_json(rows)), by
    pareto = viewer_client.get("/api/v1/reports/pareto/", RANGE).json()
    assert pareto["rows"] == approx_rows(expected.PARETO)
    versions = viewer_client.get("/api/v1/reports/model-versions/", RANGE).json()["rows"]
    for got, want in zip(versions, expected.MODEL_VERSIONS, strict=True):
        assert got["confusion"] == {"labels": want["labels"], "matrix": want["matrix"]}
        assert got["per_defect_type"] == approx_rows(want["per_defect_type"])
        flat = {k: v for k, v in want.items() if k not in {"labels", "matrix", "per_defect_type"}}
        assert pick([got], list(flat)) == approx_rows([flat])
    agreement = viewer_client.get("/api/v1/reports/agreement/", RANGE).json()["rows"]
    assert agreement == approx_rows(as_json(expected.AGREEMENT))
    inspectors = viewer_client.get("/api/v1/reports/inspectors/", RANGE).json()["rows"]
    assert inspectors == approx_rows(expected.INSPECTORS)


# --- Workbook ------------------------------------------------------------------------


def _sheet_rows(sheet, columns):
    headings = {column.heading: column for column in columns}
    rows = list(sheet.iter_rows(values_only=True))
    keys = [headings[heading].key for heading in rows[0]]
    result = []
    for values in rows[1:]:
        row = {}
        for key, value in zip(keys, values, strict=True):
            row[key] = (
                value.date()
                if isinstance(value, dt.datetime) and key in {"date", "shift_date"}
                else value
            )
        result.append(row)
    return result


def _expected_in_sheet(rows):
    # Cells hold the same numbers; an empty rate is an empty cell; 1.0 and 0.0 come back as ints.
    return approx_rows(rows)


@pytest.fixture
def workbook(viewer_client):
    response = viewer_client.get("/reports/export.xlsx", RANGE)
    assert response.status_code == 200
    assert (
        response["Content-Type"]
        == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert "linesight-report-2026-03-28-to-2026-03-29.xlsx" in response["Content-Disposition"]
    return openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))


def test_workbook_sheets_hold_every_hand_worked_figure(workbook):
    assert workbook.sheetnames == [
        "Summary",
        "Daily trend",
        "By shift",
        "By line",
        "By station",
        "By product",
        "Pareto",
        "Model versions",
        "Lab against line",
        "Precision recall",
        "Confusion matrix",
        "Agreement by day",
        "Inspectors",
        "Verification log",
        "Inspections",
    ]
    for title, by in (
        ("Daily trend", "day"),
        ("By shift", "shift"),
        ("By line", "line"),
        ("By station", "station"),
        ("By product", "product"),
    ):
        columns = exports.DIMENSION_COLUMNS[by] + exports.VOLUME_COLUMNS
        assert _sheet_rows(workbook[title], columns) == _expected_in_sheet(expected.VOLUME[by]), (
            title
        )
    assert _sheet_rows(workbook["Pareto"], exports.PARETO_COLUMNS) == approx_rows(expected.PARETO)
    flat = [
        {
            k: v
            for k, v in row.items()
            if k not in {"labels", "matrix", "per_defect_type", "model", "version"}
        }
        for row in expected.MODEL_VERSIONS
    ]
    assert _sheet_rows(workbook["Model versions"], exports.VERSION_COLUMNS) == approx_rows(flat)
    per_type = [
        {"model_version": row["model_version"], **item}
        for row in expected.MODEL_VERSIONS
        for item in row["per_defect_type"]
    ]
    assert _sheet_rows(workbook["Precision recall"], exports.PRECISION_COLUMNS) == approx_rows(
        per_type
    )
    assert _sheet_rows(workbook["Agreement by day"], exports.AGREEMENT_COLUMNS) == approx_rows(
        expected.AGREEMENT
    )
    assert _sheet_rows(workbook["Inspectors"], exports.INSPECTOR_COLUMNS) == approx_rows(
        expected.INSPECTORS
    )


def test_workbook_summary_names_the_filters_and_holds_the_totals(workbook):
    rows = {
        row[0]: row[1:] for row in workbook["Summary"].iter_rows(values_only=True) if row and row[0]
    }
    assert rows["From"][0] == "2026-03-28"
    assert rows["To"][0] == "2026-03-29"
    assert rows["Line"][0] == "all"
    assert rows["Time zone"][0] == "Europe/Paris"
    for column in exports.VOLUME_COLUMNS:
        assert rows[column.heading][0] == pytest.approx(expected.TOTALS[column.key], rel=1e-12), (
            column.key
        )
    rate_cell = next(
        c for row in workbook["Summary"].iter_rows() for c in row if c.value == "Defect rate"
    )
    assert workbook["Summary"].cell(rate_cell.row, 2).number_format == "0.0%"


def test_workbook_confusion_matrix_and_charts(workbook):
    rows = list(workbook["Confusion matrix"].iter_rows(values_only=True))
    assert rows[0][0].startswith("cap v1")
    assert rows[1] == ("Model \\ Inspector", "no defect", "crack", "scratch")
    assert [list(r[1:]) for r in rows[2:5]] == expected.MODEL_VERSIONS[0]["matrix"]
    assert rows[6][0].startswith("cap v2")
    assert [list(r[1:]) for r in rows[8:11]] == expected.MODEL_VERSIONS[1]["matrix"]
    assert len(workbook["Confusion matrix"].conditional_formatting) == 2  # a colour scale each
    pareto_chart = workbook["Pareto"]._charts[0]
    assert pareto_chart.tagname == "barChart"
    assert pareto_chart.series[0].val.numRef.f == "'Pareto'!$D$2:$D$3"
    trend_chart = workbook["Daily trend"]._charts[0]
    assert trend_chart.tagname == "lineChart"
    assert [s.val.numRef.f for s in trend_chart.series] == [
        "'Daily trend'!$I$2:$I$3",
        "'Daily trend'!$L$2:$L$3",
    ]


def test_workbook_row_sheets_are_frozen_filtered_and_in_plant_time(workbook):
    sheet = workbook["Inspections"]
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:S14"
    assert sheet.column_dimensions["B"].width == 20
    rows = _sheet_rows(sheet, exports.RAW_COLUMNS)
    assert len(rows) == expected.TOTALS["frames"]
    first = rows[0]  # f1: 00:30 CET on the 28th is 23:30 UTC on the 27th
    assert first["captured_at"] == dt.datetime(2026, 3, 28, 0, 30)
    assert first["date"] == dt.date(2026, 3, 28)
    assert (first["shift"], first["shift_date"]) == ("Night", dt.date(2026, 3, 27))
    f6 = next(row for row in rows if row["captured_at"] == dt.datetime(2026, 3, 29, 3, 30))
    assert (f6["shift"], f6["shift_date"], f6["review_reason"], f6["final_defect_type"]) == (
        "Night",
        dt.date(2026, 3, 28),
        "sampled_pass",
        "crack",
    )
    assert f6["verified_at"] == dt.datetime(2026, 3, 29, 6, 10)
    assert sheet["B2"].number_format.startswith("yyyy-mm-dd h")
    # Figures recounted from the raw sheet agree with the tables.
    assert Counter(row["date"] for row in rows) == {expected.DAY1: 7, expected.DAY2: 6}
    assert sum(1 for row in rows if row["defective"]) == expected.TOTALS["defective"]
    log = _sheet_rows(workbook["Verification log"], exports.LOG_COLUMNS)
    assert len(log) == expected.VERIFICATION_LOG_SIZE
    assert workbook["Verification log"].freeze_panes == "A2"
    g2 = [row for row in log if row["inspection"] == rows[8]["id"]]
    assert [(r["inspector"], r["decision"], r["final_defect_type"]) for r in g2] == [
        ("insp1", "correct", "scratch"),
        ("insp2", "confirm", "crack"),
    ]
    assert [r["frame_to_decision_s"] for r in g2] == [600, 3600]


# --- CSV ----------------------------------------------------------------------------------


def test_csv_rows_recount_to_the_same_figures(viewer_client):
    response = viewer_client.get("/reports/export.csv", RANGE)
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response["Content-Disposition"]
    assert 'filename="linesight-report-2026-03-28-to-2026-03-29.csv"' in disposition
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert list(rows[0]) == [column.key for column in exports.RAW_COLUMNS]
    assert len(rows) == expected.TOTALS["frames"]
    assert rows[0]["captured_at"] == "2026-03-28T00:30:00+01:00"
    assert (rows[0]["shift"], rows[0]["shift_date"]) == ("Night", "2026-03-27")
    f6 = next(row for row in rows if row["captured_at"] == "2026-03-29T03:30:00+02:00")
    assert f6["shift_date"] == "2026-03-28"
    for by, key in (("day", "date"), ("line", "line"), ("station", "station")):
        for want in expected.VOLUME[by]:
            group = [row for row in rows if row[key] == _shown(want[key])]
            assert len(group) == want["frames"], (by, want[key])
            assert sum(row["verdict"] == "pass" for row in group) == want["passed"]
            assert sum(row["verdict"] == "fail" for row in group) == want["failed"]
            assert sum(row["verdict"] == "review" for row in group) == want["to_review"]
            assert sum(row["review_status"] == "pending" for row in group) == want["pending"]
            assert sum(row["review_status"] == "verified" for row in group) == want["verified"]
            defective = sum(row["defective"] == "true" for row in group)
            assert defective == want["defective"]
            assert defective / len(group) == pytest.approx(want["defect_rate"], rel=1e-12)
            first_pass_good = sum(
                row["verdict"] == "pass"
                and row["review_reason"] in {"", "sampled_pass"}
                and row["defective"] == "false"
                for row in group
            )
            assert first_pass_good == want["first_pass_good"]
    for want in expected.BY_SHIFT:
        group = [
            r
            for r in rows
            if (r["shift_date"], r["shift"]) == (want["shift_date"].isoformat(), want["shift"])
        ]
        assert len(group) == want["frames"]
        assert sum(r["defective"] == "true" for r in group) == want["defective"]
