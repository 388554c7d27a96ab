"""What an inspector sees beside the frame: why it waits, their shift so far, a closer look."""

import datetime as dt

import pytest

from tests import factories
from tests.browser.conftest import log_in, open_live
from tests.browser.test_dashboard_browser import line, post_frame, wait_current  # noqa: F401
from tests.conftest import committed_db
from tests.images import GREEN, GREY

pytestmark = [pytest.mark.browser, pytest.mark.slow, committed_db]


def transform(page) -> str:
    return page.evaluate("() => document.querySelector('[data-image]').style.transform")


def test_the_queue_says_why_counts_the_shift_and_zooms_into_the_frame(line, browser):  # noqa: F811
    # A shift that runs all day at the plant, and one frame alice decided earlier in it.
    factories.shift(
        plant_obj=line["station"].line.plant, name="Day", start=dt.time(0), end=dt.time(0)
    )
    unsure = post_frame(line, GREY)
    alice = log_in(browser, line["server"], "alice")
    queue = open_live(alice, f"{line['url']}/dashboard/review/")
    wait_current(queue, unsure["id"])
    assert queue.inner_text('.facts [data-field="review_reason"]') == (
        "Below the confidence threshold"
    )
    queue.keyboard.press("r")
    queue.wait_for_selector("[data-empty]:not([hidden])")
    queue.reload()
    queue.wait_for_selector("body[data-live=up]")
    counter = queue.locator("[data-shift]")
    queue.wait_for_function("() => document.querySelector('[data-pending]').textContent === '0'")
    assert "Your shift (Day): 1 decided · 0 left" in counter.inner_text()

    failed = post_frame(line, GREEN)
    wait_current(queue, failed["id"])
    assert queue.inner_text('.facts [data-field="review_reason"]') == "Defect above its threshold"

    # Zoom in twice from the keyboard, pan, then fit again; the next frame starts fitted.
    queue.keyboard.press("+")
    queue.keyboard.press("+")
    assert "scale(2.25)" in transform(queue)
    assert queue.inner_text("[data-zoom-level]") == "225 %"
    queue.keyboard.press("ArrowLeft")
    assert "translate(60px, 0px)" in transform(queue)
    queue.keyboard.press("0")
    assert transform(queue) == ""
    assert queue.locator("[data-zoom-level]").is_hidden()
    queue.mouse.move(300, 300)
    queue.locator("[data-zoom-box]").hover()
    queue.mouse.wheel(0, -100)
    queue.wait_for_function("() => document.querySelector('[data-image]').style.transform !== ''")

    # Deciding counts on the shift; the zoom does not follow to the next frame.
    following = post_frame(line, GREY)
    queue.wait_for_selector(f'[data-upcoming] [data-inspection-id="{following["id"]}"]')
    assert "Below the confidence threshold" in queue.inner_text("[data-upcoming]")
    queue.keyboard.press("a")
    wait_current(queue, following["id"])
    queue.wait_for_function(
        "() => document.querySelector('[data-shift-decided]').textContent === '2'"
    )
    assert transform(queue) == ""
