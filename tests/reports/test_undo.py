"""An undone decision is marked in the verification log and counted in no figure."""

import datetime as dt
import io

import lxml.html
import openpyxl
import pytest

from inspection.services import review_undo
from reports import exports
from tests import factories
from tests.reports import expected
from tests.reports.conftest import RANGE, decide, paris


@pytest.fixture
def undone(known_plant):
    """insp1 rejected f3 at 15:05, pressed undo and confirmed the model's scratch at 15:20."""
    frame = known_plant.frames.f3
    insp1, _ = known_plant.inspectors
    rejected = frame.verifications.get()
    review_undo(verification=rejected, inspector=insp1)
    confirmed = decide(
        frame, insp1, "confirm", at=paris(28, 15, 20), spent_ms=3000, supersedes=rejected
    )
    return rejected, confirmed


@pytest.mark.usefixtures("undone")
def test_an_undone_decision_is_left_out_of_the_inspectors_figures(client, known_plant):
    client.force_login(factories.viewer())
    rows = client.get("/api/v1/reports/inspectors/", RANGE).json()["rows"]
    insp1 = next(row for row in rows if row["inspector"] == "insp1")
    assert (insp1["decisions"], insp1["confirms"], insp1["rejects"], insp1["corrections"]) == (
        5,
        3,
        0,
        2,
    )
    assert insp1["reject_share"] == 0.0
    assert insp1["avg_time_spent_s"] == pytest.approx((4 + 3 + 2 + 8 + 5) / 5)
    assert insp1["avg_frame_to_decision_s"] == pytest.approx((9900 + 1200 + 1200 + 600 + 600) / 5)
    # insp2's figures do not move; g2's decision by insp1 that insp2 overruled still counts.
    assert next(row for row in rows if row["inspector"] == "insp2")["decisions"] == 4


@pytest.mark.usefixtures("undone")
def test_the_verification_log_marks_the_undone_decision_with_who_and_when(client, known_plant):
    client.force_login(factories.viewer())
    response = client.get("/reports/export.xlsx", RANGE)
    book = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    rows = list(book["Verification log"].iter_rows(values_only=True))
    headings = [column.heading for column in exports.LOG_COLUMNS]
    assert list(rows[0]) == headings
    log = [dict(zip(headings, row, strict=True)) for row in rows[1:]]
    assert len(log) == expected.VERIFICATION_LOG_SIZE + 1  # the undone decision stays listed
    f3 = [row for row in log if row["Inspection"] == known_plant.frames.f3.pk]
    assert [(r["Decision"], r["Undone by"], r["Undone at (plant time)"]) for r in f3] == [
        ("reject", "insp1", dt.datetime(2026, 3, 28, 15, 20)),  # Paris wall clock
        ("confirm", None, None),
    ]
    # A decision another inspector overruled is not an undone one.
    g2 = [row for row in log if row["Inspection"] == known_plant.frames.g2.pk]
    assert [r["Undone by"] for r in g2] == [None, None]


@pytest.mark.usefixtures("undone")
def test_the_inspection_page_strikes_the_undone_decision_through_with_who_and_when(
    client, known_plant, settings
):
    settings.TIME_ZONE = "Europe/Paris"  # the page shows times in the site's zone
    client.force_login(factories.engineer())
    document = lxml.html.fromstring(
        client.get(f"/dashboard/inspections/{known_plant.frames.f3.pk}/").content
    )
    rows = document.xpath('//table[@class="history"]/tbody/tr')
    assert len(rows) == 2
    undone, in_force = rows
    assert undone.get("class") == "undone"
    assert undone.xpath("./td[3]/s/text()") == ["Reject (no defect)"]
    assert undone.xpath('.//*[@class="undone-note"]/text()') == [
        "undone by insp1 at 2026-03-28 15:20:00"
    ]
    assert in_force.get("class") is None
    assert not in_force.xpath(".//s")
    # Overruled by another inspector (g2) is shown as it is, not struck through.
    document = lxml.html.fromstring(
        client.get(f"/dashboard/inspections/{known_plant.frames.g2.pk}/").content
    )
    assert not document.xpath('//table[@class="history"]//s')
