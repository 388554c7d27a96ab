"""Pictures on the dashboards in real Chromium: station bars of the last hour, yield by shift."""

import datetime as dt

import pytest

from tests import factories
from tests.browser.conftest import log_in, open_live
from tests.browser.test_dashboard_browser import line, post_frame  # noqa: F401
from tests.conftest import committed_db
from tests.images import GREEN, RED

pytestmark = [pytest.mark.browser, pytest.mark.slow, committed_db]


def test_tiles_draw_the_last_hour_and_the_overview_compares_shifts(line, browser):  # noqa: F811
    factories.shift(
        plant_obj=line["station"].line.plant, name="Day", start=dt.time(0), end=dt.time(0)
    )
    post_frame(line, GREEN)
    post_frame(line, RED)
    alice = log_in(browser, line["server"], "alice")

    line_view = open_live(alice, f"{line['url']}/dashboard/lines/L1/")
    spark = line_view.locator('.tile[data-station="ST1"] svg.spark')
    assert spark.locator("rect").count() == 12
    assert spark.locator("rect[data-rate]").count() == 1  # frames only in the latest step
    assert spark.locator("rect[data-rate]").get_attribute("data-rate") == "0.5"
    assert "latest 50 %" in spark.get_attribute("aria-label")

    # A third frame, a defect: the bars follow without a reload.
    post_frame(line, GREEN)
    line_view.wait_for_function(
        "() => document.querySelector('.tile[data-station=ST1] rect[data-rate]')"
        ".getAttribute('data-rate').startsWith('0.66')",
        timeout=20_000,
    )

    overview = open_live(alice, f"{line['url']}/dashboard/")
    text = overview.inner_text('[data-line="L1"] [data-line-yield]')
    assert "First-pass yield 33.3 % this shift (Day)" in text
    assert "— the shift before (Day)" in text  # yesterday's Day shift had no frames
