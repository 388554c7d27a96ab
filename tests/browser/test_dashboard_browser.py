"""Inspectors at work in real Chromium: frames posted through the API appear live, are
decided with the keyboard, and every other open screen follows."""

import pytest
import requests
from django.contrib.auth.models import User

from inspection.models import Inspection, Verification
from tests import factories
from tests.browser.conftest import log_in, off_main_thread, open_live
from tests.conftest import committed_db
from tests.images import GREEN, GREY, RED, frame_bytes
from tests.registry import ready_version

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    committed_db,
]

HOSTILE = '"><img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


@pytest.fixture
def line(live_asgi):
    """Line L1, station ST1 with the colour classifier: red ok, green missing_cap, grey unsure."""
    plant = factories.plant(code="PL1")
    line = factories.line(code="L1", plant_obj=plant)
    station, token = factories.station_with_token(code="ST1", line_obj=line)
    version = ready_version(model_name="bottle")
    factories.deployment(station_obj=station, version=version, confidence_threshold=0.8)
    factories.inspector(username="alice")
    factories.inspector(username="bob")
    return {"station": station, "token": token, "url": live_asgi.url, "server": live_asgi}


def post_frame(line, colour, **fields) -> dict:
    response = requests.post(
        f"{line['url']}/api/v1/inspections/",
        headers={"Authorization": f"Token {line['token']}"},
        data={"station": "ST1", **fields},
        files={"image": ("frame.jpg", frame_bytes(colour), "image/jpeg")},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()


def frame_on(page, frame_id: int, scope: str = ""):
    return page.wait_for_selector(f'{scope} [data-inspection-id="{frame_id}"]'.strip())


def current_frame(page) -> int | None:
    value = page.get_attribute("[data-current]", "data-inspection-id")
    return int(value) if value else None


def wait_current(page, frame_id: int) -> None:
    page.wait_for_selector(f'[data-current][data-inspection-id="{frame_id}"]')
    page.wait_for_function("id => document.querySelector('[data-image]').complete", arg=frame_id)


def test_inspectors_review_live_frames_with_the_keyboard(line, browser):
    alice = log_in(browser, line["server"], "alice")
    bob = log_in(browser, line["server"], "bob")
    line_view = open_live(alice, f"{line['url']}/dashboard/lines/L1/")
    queue = open_live(alice, f"{line['url']}/dashboard/review/")
    queue.wait_for_selector("[data-empty]:has-text('Nothing waits for review')")
    bobs_line = open_live(bob, f"{line['url']}/dashboard/lines/L1/")

    # A green frame: the model says missing_cap, a fail that waits for review.
    failed = post_frame(line, GREEN, serial="SN-1", lot="LOT-7")
    assert (failed["verdict"], failed["defect_type"]) == ("fail", "missing_cap")
    tile = line_view.locator('.tile[data-station="ST1"]')
    frame_on(line_view, failed["id"], "[data-frames]")
    assert "verdict-fail" in tile.get_attribute("class")
    assert tile.get_attribute("data-inspection-id") == str(failed["id"])
    assert "missing_cap" in line_view.inner_text(
        f'[data-frames] [data-inspection-id="{failed["id"]}"]'
    )
    frame_on(bobs_line, failed["id"], "[data-frames]")

    # It arrives in alice's queue without a reload, with what she needs to judge it.
    wait_current(queue, failed["id"])
    assert queue.inner_text('.facts [data-field="serial"]') == "SN-1"
    assert queue.inner_text('.facts [data-field="lot"]') == "LOT-7"
    assert queue.inner_text('.facts [data-field="station"]') == "ST1"
    assert "missing_cap" in queue.inner_text("[data-topk]")
    assert (
        queue.evaluate("() => document.querySelector('[data-image]').naturalWidth") > 0
    )  # the image really loaded through the authenticated API
    _wait_db(lambda: Inspection.objects.get(pk=failed["id"]).claimed_by.username == "alice")

    # A grey frame (unsure): bob opens his queue and gets it, not alice's claimed frame.
    unsure = post_frame(line, GREY)
    assert unsure["verdict"] == "review"
    frame_on(queue, unsure["id"], "[data-upcoming]")
    bobs_queue = open_live(bob, f"{line['url']}/dashboard/review/")
    wait_current(bobs_queue, unsure["id"])
    # ...and it leaves alice's list of next frames as soon as he has it.
    queue.wait_for_selector(
        f'[data-upcoming] [data-inspection-id="{unsure["id"]}"]', state="detached"
    )

    # Alice: a comment, then confirm, all from the keyboard.
    queue.keyboard.press("c")
    queue.keyboard.type(HOSTILE)
    queue.keyboard.press("Enter")
    queue.keyboard.press("a")
    record = _wait_db(lambda: Verification.objects.filter(inspection_id=failed["id"]).first())
    assert (record.decision, record.defect_type.code, record.comment) == (
        "confirm",
        "missing_cap",
        HOSTILE,
    )
    assert record.inspector.username == "alice" and record.time_spent_ms > 0
    queue.wait_for_selector("[data-empty]:not([hidden])")
    # Bob's line view follows: the thumbnail now says verified.
    bobs_line.wait_for_function(
        "id => document.querySelector("
        "`[data-frames] [data-inspection-id='${id}'] [data-field=review]`).textContent"
        " === 'verified'",
        arg=failed["id"],
    )

    # Undo: the frame comes back; '1' corrects it to the first listed defect type.
    queue.keyboard.press("u")
    wait_current(queue, failed["id"])
    assert "undoing" in queue.inner_text('[data-field="undo"]')
    queue.keyboard.press("1")  # crack (defect types are listed by code)
    _wait_db(lambda: Verification.objects.filter(inspection_id=failed["id"]).count() == 2)
    first, second = Verification.objects.filter(inspection_id=failed["id"]).order_by("id")
    assert (first.decision, first.defect_type.code) == ("confirm", "missing_cap")  # untouched
    assert (second.decision, second.defect_type.code) == ("correct", "crack")
    assert Inspection.objects.get(pk=failed["id"]).final_defect_type.code == "crack"

    # Bob rejects his frame with 'r'; alice's queue stays empty, the count follows.
    bobs_queue.keyboard.press("r")
    verdict = _wait_db(lambda: Verification.objects.filter(inspection_id=unsure["id"]).first())
    assert (verdict.decision, verdict.inspector.username) == ("reject", "bob")
    queue.wait_for_function("() => document.querySelector('[data-pending]').textContent === '0'")

    # A pass needs no review: it shows on the line, never in a queue.
    passed = post_frame(line, RED)
    assert passed["verdict"] == "pass"
    frame_on(line_view, passed["id"], "[data-frames]")
    line_view.wait_for_function(
        "() => document.querySelector('.tile[data-station=ST1]').classList.contains('verdict-pass')"
    )
    assert current_frame(queue) is None

    # The detail page shows the whole history; typed text never ran anywhere.
    detail = alice.new_page()
    detail.goto(f"{line['url']}/dashboard/inspections/{failed['id']}/")
    history = detail.inner_text("table.history")
    assert "Confirm" in history and "Correct the defect type" in history and HOSTILE in history
    for page in (line_view, queue, bobs_line, bobs_queue, detail):
        assert page.evaluate("() => window.__xss") is None
        assert page.locator('img[src="x"]').count() == 0


def test_two_inspectors_never_decide_the_same_frame(line, browser):
    alice = log_in(browser, line["server"], "alice")
    bob = log_in(browser, line["server"], "bob")
    queue = open_live(alice, f"{line['url']}/dashboard/review/")
    frame = post_frame(line, GREEN)
    wait_current(queue, frame["id"])
    _wait_db(lambda: Inspection.objects.get(pk=frame["id"]).claimed_by_id is not None)
    bobs_queue = open_live(bob, f"{line['url']}/dashboard/review/")
    bobs_queue.wait_for_selector("[data-empty]:not([hidden])")
    assert current_frame(bobs_queue) is None  # claimed by alice: not offered to bob

    # Bob's integration posts a decision anyway: refused, with who has it.
    token = factories.api_token(User.objects.get(username="bob"))
    late = requests.post(
        f"{line['url']}/api/v1/inspections/{frame['id']}/verifications/",
        json={"decision": "reject"},
        headers={"Authorization": f"Token {token}"},
        timeout=10,
    )
    assert late.status_code == 409
    assert "being reviewed by alice" in late.json()["detail"]

    # Alice skips: the frame is released and bob's queue offers it at once.
    queue.keyboard.press("s")
    wait_current(bobs_queue, frame["id"])
    _wait_db(lambda: Inspection.objects.get(pk=frame["id"]).claimed_by.username == "bob")
    queue.wait_for_timeout(1500)  # alice's queue refreshes after events: it must not take it back
    assert current_frame(queue) is None
    assert Inspection.objects.get(pk=frame["id"]).claimed_by.username == "bob"
    bobs_queue.keyboard.press("Enter")
    _wait_db(lambda: Verification.objects.filter(inspection_id=frame["id"]).count() == 1)
    assert Verification.objects.get(inspection_id=frame["id"]).inspector.username == "bob"


def test_a_dashboard_catches_up_on_frames_sent_while_its_socket_was_down(line, browser):
    alice = log_in(browser, line["server"], "alice")
    line_view = open_live(alice, f"{line['url']}/dashboard/lines/L1/")
    first = post_frame(line, RED)
    frame_on(line_view, first["id"], "[data-frames]")

    server = line["server"]
    server.stop()
    line_view.wait_for_selector("body[data-live=down]")
    assert "reconnecting" in line_view.inner_text("[data-live-status]")
    # A frame judged while no socket is open: its live event reaches nobody.
    from inspection.services import inspection_create

    missed = off_main_thread(inspection_create, station=line["station"], image=frame_bytes(GREEN))
    server.start()

    line_view.wait_for_selector("body[data-live=up]", timeout=20_000)
    frame_on(line_view, missed.pk, "[data-frames]")
    tile = line_view.locator('.tile[data-station="ST1"]')
    assert tile.get_attribute("data-inspection-id") == str(missed.pk)
    assert "verdict-fail" in tile.get_attribute("class")
    # And it is live again afterwards.
    after = post_frame(line, GREY)
    frame_on(line_view, after["id"], "[data-frames]")


def test_hostile_text_shows_as_text_on_every_page(line, browser):
    from masterdata.models import DefectType

    DefectType.objects.filter(code="crack").update(name=HOSTILE)
    alice = log_in(browser, line["server"], "alice")
    line_view = open_live(alice, f"{line['url']}/dashboard/lines/L1/")
    queue = open_live(alice, f"{line['url']}/dashboard/review/")
    frame = post_frame(line, GREEN, serial=HOSTILE[:100], lot="<b>lot</b>")
    wait_current(queue, frame["id"])
    frame_on(line_view, frame["id"], "[data-frames]")
    assert queue.inner_text('.facts [data-field="serial"]') == HOSTILE[:100]
    assert queue.inner_text('.facts [data-field="lot"]') == "<b>lot</b>"
    assert HOSTILE in queue.inner_text(".keys")
    overview = open_live(alice, f"{line['url']}/dashboard/")
    detail = alice.new_page()
    detail.goto(f"{line['url']}/dashboard/inspections/{frame['id']}/")
    assert HOSTILE[:100] in detail.inner_text("dl.facts")
    for page in (line_view, queue, overview, detail):
        assert page.evaluate("() => window.__xss") is None
        assert page.locator('img[src="x"]').count() == 0
        assert page.locator("b", has_text="lot").count() == 0


def _wait_db(check, timeout: float = 10.0):
    """Poll the database until ``check()`` is truthy (the page saves asynchronously)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except (Inspection.DoesNotExist, AttributeError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("the database never showed the expected change")
        time.sleep(0.05)
