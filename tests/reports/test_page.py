"""What the reports page draws and offers beyond its tables: chart series, filter choices."""

import json

import lxml.html
import pytest

from tests import factories
from tests.reports.conftest import RANGE


@pytest.fixture
def viewer_client(client, known_plant):
    client.force_login(factories.viewer())
    return client


def chart_data(response) -> dict:
    document = lxml.html.fromstring(response.content)
    return json.loads(document.get_element_by_id("report-data").text)


def test_agreement_chart_leaves_a_gap_on_days_without_verified_frames(viewer_client):
    # Nothing is captured on the 26th; the one frame of the 27th is not verified.
    response = viewer_client.get("/reports/", {"from": "2026-03-26", "to": "2026-03-29"})
    agreement = chart_data(response)["agreement"]
    assert agreement["labels"] == ["2026-03-26", "2026-03-27", "2026-03-28", "2026-03-29"]
    assert agreement["versions"] == {
        "cap v1": [None, None, pytest.approx(1 / 3), pytest.approx(1 / 2)],
        "cap v2": [None, None, pytest.approx(1 / 2), 0.0],
    }


def test_trend_and_pareto_charts_draw_the_tables_rows(viewer_client):
    data = chart_data(viewer_client.get("/reports/", RANGE))
    assert data["daily"]["labels"] == ["2026-03-28", "2026-03-29"]
    assert data["daily"]["defect_rate"] == pytest.approx([4 / 7, 4 / 6])
    assert data["daily"]["first_pass_yield"] == pytest.approx([2 / 7, 2 / 6])
    assert data["pareto"] == {
        "labels": ["crack", "scratch"],
        "confirmed": [4, 2],
        "cumulative_share": pytest.approx([4 / 6, 1.0]),
    }


def test_a_model_version_picked_from_the_filter_form_selects_its_frames(viewer_client):
    document = lxml.html.fromstring(viewer_client.get("/reports/", RANGE).content)
    offered = document.xpath('//select[@name="model_version"]/option/text()')
    assert offered == ["all", "cap v1", "cap v2"]
    response = viewer_client.get("/reports/", {**RANGE, "model_version": "cap v2"})
    assert response.status_code == 200
    assert [row["model_version"] for row in response.context["versions"]] == ["cap v2"]
    picked = lxml.html.fromstring(response.content).xpath(
        '//select[@name="model_version"]/option[@selected]/text()'
    )
    assert picked == ["cap v2"]


def test_a_period_with_one_day_of_frames_says_so_and_draws_bars(viewer_client):
    one_day = {"from": "2026-03-28", "to": "2026-03-28"}
    response = viewer_client.get("/reports/", one_day)
    assert chart_data(response)["daily"]["days_with_frames"] == 1
    note = lxml.html.fromstring(response.content).get_element_by_id("trend-note")
    assert "Only one day of this period has frames" in note.text_content()
    # A week with frames on several days is a trend: no note.
    week = viewer_client.get("/reports/", {"from": "2026-03-23", "to": "2026-03-29"})
    assert chart_data(week)["daily"]["days_with_frames"] == 3  # the 27th, 28th and 29th
    assert lxml.html.fromstring(week.content).xpath('//*[@id="trend-note"]') == []
    nothing = viewer_client.get("/reports/", {"from": "2025-01-01", "to": "2025-01-07"})
    note = lxml.html.fromstring(nothing.content).get_element_by_id("trend-note")
    assert note.text_content() == "No frames in this period."
