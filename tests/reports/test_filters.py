"""Filters narrow every output the same way; bad filters get a clear 400 everywhere."""

import datetime as dt
import io

import openpyxl
import pytest

from common.models import Job
from tests import factories
from tests.reports import expected
from tests.reports.conftest import RANGE


@pytest.fixture
def viewer_client(client, known_plant):
    client.force_login(factories.viewer())
    return client


def summary(client, **params):
    response = client.get("/api/v1/reports/summary/", {**RANGE, **params})
    assert response.status_code == 200, response.content
    return response.json()["totals"]


def test_line_filter_gives_that_lines_figures(viewer_client):
    for row in expected.BY_LINE:
        totals = summary(viewer_client, line=row["line"])
        assert totals["frames"] == row["frames"]
        assert totals["defect_rate"] == pytest.approx(row["defect_rate"])
        assert totals["first_pass_yield"] == pytest.approx(row["first_pass_yield"])


def test_station_and_product_filters(viewer_client):
    assert summary(viewer_client, station="S1B")["frames"] == 1
    totals = summary(viewer_client, product="B")
    assert (totals["frames"], totals["defective"]) == (7, 4)


def test_shift_filter_takes_the_night_shift_frames_on_both_sides_of_midnight(viewer_client):
    # Night of the 27th (f1) and night of the 28th across midnight and DST (5 frames).
    totals = summary(viewer_client, shift="Night")
    assert (totals["frames"], totals["defective"], totals["first_pass_good"]) == (6, 4, 2)
    rows = viewer_client.get(
        "/api/v1/reports/volume/", {**RANGE, "shift": "Night", "by": "shift"}
    ).json()["rows"]
    assert [(row["shift_date"], row["frames"]) for row in rows] == [
        ("2026-03-27", 1),
        ("2026-03-28", 5),
    ]


def test_model_version_filter_accepts_both_spellings(viewer_client):
    for spelling in ("cap:2", "cap v2"):
        rows = viewer_client.get(
            "/api/v1/reports/model-versions/", {**RANGE, "model_version": spelling}
        ).json()["rows"]
        assert [row["model_version"] for row in rows] == ["cap v2"]
        assert rows[0]["agreement"] == pytest.approx(1 / 3)


def test_plant_filter_and_its_time_zone(viewer_client, known_plant):
    other = factories.plant(code="Q", time_zone="America/New_York")
    factories.line(code="LQ", plant_obj=other)
    assert summary(viewer_client, plant="P")["frames"] == 13
    assert summary(viewer_client, plant="Q")["frames"] == 0
    body = viewer_client.get("/api/v1/reports/summary/", {**RANGE, "plant": "Q"}).json()
    assert body["filters"]["time_zone"] == "America/New_York"


def test_one_day_range_counts_by_plant_date_not_utc_date(viewer_client):
    # f1 (00:30 Paris on the 28th) is still the 27th in UTC; it counts for the 28th.
    totals = summary(viewer_client, **{"from": "2026-03-28", "to": "2026-03-28"})
    assert totals["frames"] == 7
    # x1 (23:30 Paris on the 27th) is alone on the 27th.
    assert summary(viewer_client, **{"from": "2026-03-27", "to": "2026-03-27"})["frames"] == 1


def test_filtered_workbook_names_its_filters_and_holds_only_that_line(viewer_client):
    response = viewer_client.get("/reports/export.xlsx", {**RANGE, "line": "L2"})
    book = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    filters = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True) if row[0]}
    assert filters["Line"] == "L2"
    raw = list(book["Inspections"].iter_rows(values_only=True))[1:]
    assert len(raw) == 6
    assert {row[5] for row in raw} == {"L2"}


BAD_FILTERS = [
    ({"line": "NOPE"}, "Unknown line 'NOPE'."),
    ({"station": "S9"}, "Unknown station 'S9'."),
    ({"product": "Z"}, "Unknown product 'Z'."),
    ({"plant": "X"}, "Unknown plant 'X'."),
    ({"shift": "Graveyard"}, "Unknown shift 'Graveyard'."),
    ({"model_version": "cap:9"}, "Unknown model_version 'cap:9'."),
    ({"model_version": "cap"}, "model_version must look like 'name:3' or 'name v3', not 'cap'."),
    ({"from": "2026-03-30", "to": "2026-03-28"}, "'from' (2026-03-30) is after 'to' (2026-03-28)."),
    ({"from": "28/03/2026"}, "'from' must be a date written YYYY-MM-DD, not '28/03/2026'."),
    ({"to": "2026-02-30"}, "'to' (2026-02-30): day 30 does not exist; February 2026 has 28 days."),
    (
        {"from": "2026-13-01"},
        "'from' (2026-13-01): month 13 does not exist; months go from 01 to 12.",
    ),
    ({"from": "2020-01-01", "to": "2026-01-01"}, "A report covers at most 366 days"),
    ({"station": "S2", "line": "L1"}, "Station 'S2' is not on line 'L1'."),
    ({"line": "L" * 51}, "'line' is too long: at most 50 characters, not 51."),
    ({"from": "2026-03-28'; DROP TABLE x;--"}, "'from' must be a date written YYYY-MM-DD"),
    ({"line": "<script>alert(1)</script>"}, "Unknown line '<script>alert(1)</script>'."),
]


@pytest.mark.parametrize(("params", "message"), BAD_FILTERS)
def test_bad_filter_is_a_clear_400_in_json(viewer_client, params, message):
    for table in ("summary", "volume", "pareto", "model-versions", "agreement", "inspectors"):
        response = viewer_client.get(f"/api/v1/reports/{table}/", {**RANGE, **params})
        assert response.status_code == 400, table
        assert response.json()["detail"].startswith(message), table


@pytest.mark.parametrize(("params", "message"), BAD_FILTERS)
def test_bad_filter_is_a_message_on_the_page_and_no_download(viewer_client, params, message):
    for url in ("/reports/", "/reports/export.xlsx", "/reports/export.csv"):
        response = viewer_client.get(url, {**RANGE, **params})
        assert response.status_code == 400, url
        assert response["Content-Type"].startswith("text/html")
        page = response.content.decode()
        assert 'id="filter-error"' in page
        assert "<script>alert(1)</script>" not in page  # escaped
    assert not Job.objects.exists()  # no background export was queued either


def test_unknown_volume_grouping_is_a_400(viewer_client):
    response = viewer_client.get("/api/v1/reports/volume/", {**RANGE, "by": "week"})
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "'by' must be one of day, shift, line, station, product, not 'week'."
    )


def test_missing_dates_default_to_the_last_seven_days(viewer_client):
    body = viewer_client.get("/api/v1/reports/summary/").json()
    start, end = body["filters"]["from"], body["filters"]["to"]
    assert (dt.date.fromisoformat(end) - dt.date.fromisoformat(start)).days == 6


def test_the_date_range_selects_the_same_frames_with_or_without_the_date_index(known_plant):
    from django.db import connection

    from inspection.models import Inspection
    from reports.filters import report_filters
    from reports.rollups import raw_rows_only
    from reports.selectors import date_index_pays

    filters = report_filters(RANGE)
    by_index = set(Inspection.objects.filter(filters.inspection_q()).values_list("id", flat=True))
    assert len(by_index) == expected.TOTALS["frames"]
    with raw_rows_only():  # the plan of the raw query, whatever rollups another test left
        if connection.vendor == "sqlite":
            # 2 of the table's 4 days: SQLite is told to scan rather than walk the index
            assert date_index_pays(filters) is False
            scanned = Inspection.objects.filter(filters.inspection_q(date_index=False))
            assert set(scanned.values_list("id", flat=True)) == by_index
            elsewhere = report_filters({"from": "2025-03-01", "to": "2025-03-28"})
            assert date_index_pays(elsewhere) is True
        else:
            assert date_index_pays(filters) is True  # PostgreSQL plans from its statistics


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"station": ""}, "'station' is empty: leave it out for every station, or give a value."),
        ({"to": ""}, "'to' is empty: leave it out for the default period, or give a value."),
        ({"line": " "}, "'line' is empty: leave it out for every line, or give a value."),
        ({"model_version": ""}, "'model_version' is empty: leave it out for every model version"),
    ],
)
def test_an_empty_parameter_is_a_clear_400_in_the_api(viewer_client, params, message):
    # A script whose variable was unset must not get every station's figures as one's.
    response = viewer_client.get("/api/v1/reports/summary/", {**RANGE, **params})
    assert response.status_code == 400
    assert response.json()["detail"].startswith(message)


def test_the_pages_own_form_sends_all_as_empty_fields_and_shows_what_it_used(viewer_client):
    blank = {name: "" for name in ("plant", "line", "station", "product", "model_version")}
    response = viewer_client.get("/reports/", {**RANGE, **blank, "shift": ""})
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="filter-error"' not in page
    assert f'name="to" value="{RANGE["to"]}"' in page


def test_a_to_date_too_early_for_the_default_period_is_refused(viewer_client):
    message = "'to' (0001-01-02) is too early for a report."
    api = viewer_client.get("/api/v1/reports/summary/", {"to": "0001-01-02"})
    assert api.status_code == 400
    assert api.json()["detail"] == message
    page = viewer_client.get("/reports/", {"from": "", "to": "0001-01-02"})
    assert page.status_code == 400
    assert message.replace("'", "&#x27;") in page.content.decode()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"from": "2026-13-01"},
            "'from' (2026-13-01): month 13 does not exist; months go from 01 to 12.",
        ),
        (
            {"from": "2026-00-10"},
            "'from' (2026-00-10): month 00 does not exist; months go from 01 to 12.",
        ),
        (
            {"from": "2026-02-30"},
            "'from' (2026-02-30): day 30 does not exist; February 2026 has 28 days.",
        ),
        (
            {"to": "2028-02-30"},
            "'to' (2028-02-30): day 30 does not exist; February 2028 has 29 days.",
        ),
        ({"to": "2026-04-31"}, "'to' (2026-04-31): day 31 does not exist; April 2026 has 30 days."),
        ({"to": "2026-04-00"}, "'to' (2026-04-00): day 00 does not exist; April 2026 has 30 days."),
        (
            {"from": "0000-01-01"},
            "'from' (0000-01-01): year 0000 does not exist; years start at 0001.",
        ),
        ({"from": "2026-3-1"}, "'from' must be a date written YYYY-MM-DD, not '2026-3-1'."),
        ({"to": "yesterday"}, "'to' must be a date written YYYY-MM-DD, not 'yesterday'."),
        (  # full-width digits
            {"to": "\uff12\uff10\uff12\uff16-03-01"},
            "'to' must be a date written YYYY-MM-DD, not '\uff12\uff10\uff12\uff16-03-01'.",
        ),
        ({"shift": "S" * 51}, "'shift' is too long: at most 50 characters, not 51."),
        (
            {"model_version": "m" * 71},
            "'model_version' is too long: at most 70 characters, not 71.",
        ),
    ],
)
def test_each_wrong_part_of_a_filter_is_named_on_the_page_and_in_the_api(
    viewer_client, params, message
):
    api = viewer_client.get("/api/v1/reports/summary/", {**RANGE, **params})
    assert api.status_code == 400
    assert api.json()["detail"] == message
    page = viewer_client.get("/reports/", {**RANGE, **params})
    assert page.status_code == 400
    assert message.replace("'", "&#x27;") in page.content.decode()


def test_a_leap_day_and_surrounding_spaces_are_accepted(viewer_client):
    response = viewer_client.get(
        "/api/v1/reports/summary/", {"from": " 2028-02-29", "to": "2028-03-01 "}
    )
    assert response.status_code == 200
    assert response.json()["filters"]["from"] == "2028-02-29"
