"""Review speed: decisions per minute through the keyboard, and key press → next frame shown.

A real server (uvicorn, in-memory layer), frames posted through the device
API so the queue holds real pending frames with real images, and headless
Chromium driving /dashboard/review/ with keys only (a, r, 2, Enter) as fast
as the page lets it. For each decision the page itself records the time from
the keydown to the next frame decoded and painted (window.LineSightReview
.timings); the decision POST's round trip, read from the browser's Resource
Timing, is the baseline the page must not wait for. Every decision must end
up in the database.

Two phases in the same run: keys as fast as the page accepts them (the most
decisions per minute), then keys paced at --pace-ms (still faster than any
person) for the key-to-frame time an inspector sees.

    .venv/bin/python benchmarks/review_speed.py [--frames 150] [--pace-ms 250]
        [--database-url ...]
"""

import _dashboard  # noqa: I001  (sets up Django before the imports below)

import argparse
import itertools
import os
import time

import requests

from tests.browser.chromium import CHROMIUM_ARGS

TARGET_MS = 150.0


def fill_queue(url: str, token: str, count: int) -> None:
    from tests.images import GREEN, GREY, frame_bytes

    images = [frame_bytes(GREEN, size=(640, 480)), frame_bytes(GREY, size=(640, 480))]
    with requests.Session() as session:
        for index in range(count):
            response = session.post(
                f"{url}/api/v1/inspections/",
                headers={"Authorization": f"Token {token}"},
                data={"station": "ST1", "serial": f"SN-{index}"},
                files={"image": ("f.jpg", images[index % 2], "image/jpeg")},
                timeout=30,
            )
            response.raise_for_status()
            assert response.json()["review_status"] == "pending", response.json()


WAIT_FOR_NEXT_FRAME = """shown => {
    const figure = document.querySelector('[data-current]');
    const moved = figure.dataset.inspectionId !== shown || figure.hidden;
    return moved && document.querySelector('[data-image]').complete;
}"""


def decide(page, count: int, pace_ms: float) -> dict:
    """Press decision keys ``count`` times, each once the next frame is up (and ``pace_ms``
    after the previous key at the earliest); the page's own timings of this phase."""
    keys = itertools.cycle(["a", "r", "2", "Enter"])
    first_timing = page.evaluate("() => window.LineSightReview.timings.length")
    started = time.perf_counter()
    for index in range(count):
        if pace_ms:
            delay = started + index * pace_ms / 1000 - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        shown = page.get_attribute("[data-current]", "data-inspection-id")
        page.keyboard.press(next(keys))
        page.wait_for_function(WAIT_FOR_NEXT_FRAME, arg=shown, polling="raf")
    elapsed = time.perf_counter() - started
    timings = page.evaluate(f"() => window.LineSightReview.timings.slice({first_timing})")
    return {"per_minute": count / elapsed * 60, "timings": timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=150, help="decisions in each phase")
    parser.add_argument(
        "--pace-ms", type=float, default=250.0, help="key interval of the paced phase"
    )
    parser.add_argument("--database-url", default=None, help="a THROWAWAY database")
    parser.add_argument(
        "--chromium", default=os.environ.get("LINESIGHT_CHROMIUM", "/usr/bin/chromium")
    )
    args = parser.parse_args()

    data_dir = _dashboard.configure(args.database_url)
    seeded = _dashboard.seed()
    # Playwright's sync API keeps a loop on this thread; the ORM reads below are plain sync code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    from inspection.models import Verification

    total = 2 * args.frames
    with _dashboard.servers(1, data_dir, None, "bench-review") as running:
        url = running[0].url
        fill_queue(url, seeded["token"], total)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True
            )
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}/accounts/login/")
            page.fill("input[name=username]", "bench")
            page.fill("input[name=password]", "bench")
            page.click("button[type=submit]")
            page.wait_for_url(f"{url}/dashboard/")
            page.goto(f"{url}/dashboard/review/")
            page.wait_for_selector("[data-current][data-inspection-id]")
            page.wait_for_function("() => document.querySelector('[data-image]').complete")
            flat_out = decide(page, args.frames, 0)
            paced = decide(page, args.frames, args.pace_ms)
            page.wait_for_selector("[data-empty]:not([hidden])")
            posts = page.evaluate(
                """() => performance.getEntriesByType('resource')
                    .filter(e => e.name.includes('/verifications/')).map(e => e.duration)"""
            )
            browser.close()
        deadline = time.monotonic() + 30
        while Verification.objects.count() < total and time.monotonic() < deadline:
            time.sleep(0.1)
        saved = Verification.objects.count()

    p = _dashboard.percentile
    print(f"machine load average at the end: {os.getloadavg()[0]:.1f} (2 cores)")
    print(f"{total} pending frames (640x480 JPEG), decided with the keys a, r, 2, Enter")
    for name, phase in (
        ("as fast as the page allows", flat_out),
        (f"paced, a key every {args.pace_ms:g} ms", paced),
    ):
        t = phase["timings"]
        print(
            f"{name:<32} {phase['per_minute']:>5.0f} decisions/min; key -> next frame shown "
            f"p50 {p(t, 0.5):.1f} ms, p95 {p(t, 0.95):.1f} ms, max {max(t):.1f} ms "
            f"({len(t)} samples)"
        )
    print(
        f"baseline, decision POST round trip: p50 {p(posts, 0.5):.1f} ms, "
        f"p95 {p(posts, 0.95):.1f} ms (the page shows the next frame without waiting for it)"
    )
    print(f"decisions saved: {saved}/{total}")
    met = saved == total and p(paced["timings"], 0.95) < TARGET_MS
    verdict = "met" if met else "MISSED"
    print(f"target: paced p95 under {TARGET_MS:g} ms and every decision saved: {verdict}")


if __name__ == "__main__":
    main()
