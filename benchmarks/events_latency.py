"""Live-event latency: from a frame's commit to the event at every open dashboard.

Real servers (uvicorn, as ``make serve``), frames POSTed through the device
API at a steady rate, dashboards connected over WebSockets to the line's
group. Latency is measured per delivered event as (arrival time at the
client) - (``sent_at``, stamped by the server right after the transaction
committed); both clocks are this machine's. Every dashboard must receive
every frame exactly once.

Three shapes, all by default:
  memory        one server process, in-memory channel layer (the embedded default)
  redis         two server processes sharing the database and Redis through
                channels_redis' default layer; frames go to both in turn and
                dashboards are spread over both
  redis-pubsub  the same with LINESIGHT_CHANNEL_LAYER=redis-pubsub

    .venv/bin/python benchmarks/events_latency.py [--rate 50] [--seconds 20]
        [--dashboards 10] [--shapes memory,redis,redis-pubsub] [--repeat 3] [--redis-url redis://127.0.0.1:6379/9]
        [--database-url postgres://.../throwaway]
"""

import _dashboard  # noqa: I001  (sets up Django before the imports below)

import argparse
import asyncio
import json
import threading
import time
import uuid
import multiprocessing
import os
import statistics
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import requests
import websockets

TARGET_P99_MS = 100.0


async def dashboard(url: str, cookie: str, arrivals: dict, ready: asyncio.Event, done):
    ws_url = url.replace("http://", "ws://") + "/ws/lines/L1/"
    async with websockets.connect(
        ws_url, additional_headers={"Cookie": cookie, "Origin": url}, max_queue=None
    ) as socket:
        hello = json.loads(await socket.recv())
        assert hello["type"] == "hello", hello
        ready.set()
        while not done():
            try:
                message = await asyncio.wait_for(socket.recv(), 0.5)
            except TimeoutError:
                continue
            now = time.time()
            event = json.loads(message)
            if event.get("type") == "inspection.created":
                frame_id = event["inspection"]["id"]
                arrivals.setdefault(frame_id, []).append((now - event["sent_at"]) * 1000)


def post_frames(urls: list[str], token: str, rate: float, seconds: float) -> tuple[list, list]:
    """POST frames at ``rate`` per second for ``seconds``; returns frame ids and request times."""
    from tests.images import BLUE, GREEN, GREY, RED, frame_bytes

    images = [frame_bytes(colour, size=(640, 480)) for colour in (RED, GREEN, BLUE, GREY)]
    local = threading.local()
    ids, request_ms, errors = [], [], []

    def post(index: int) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        started = time.perf_counter()
        response = session.post(
            f"{urls[index % len(urls)]}/api/v1/inspections/",
            headers={"Authorization": f"Token {token}"},
            data={"station": "ST1"},
            files={"image": ("f.jpg", images[index % len(images)], "image/jpeg")},
            timeout=30,
        )
        request_ms.append((time.perf_counter() - started) * 1000)
        if response.status_code != 201:
            errors.append(f"{response.status_code} {response.text[:200]}")
        else:
            ids.append(response.json()["id"])

    total = int(rate * seconds)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        for index in range(total):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(post, index)
    if errors:
        raise SystemExit(f"{len(errors)} POSTs failed, first: {errors[0]}")
    return ids, request_ms


async def run_shape(
    urls: list[str], cookie: str, token: str, rate: float, seconds: float, dashboards: int
):
    arrivals_per_dashboard = [{} for _ in range(dashboards)]
    readies = [asyncio.Event() for _ in range(dashboards)]
    finished = False
    tasks = [
        asyncio.create_task(
            dashboard(
                urls[i % len(urls)], cookie, arrivals_per_dashboard[i], readies[i], lambda: finished
            )
        )
        for i in range(dashboards)
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 30)
    # The device client runs in a process of its own so its threads do not
    # delay the dashboards' event loop (which would inflate the latency).
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        ids, request_ms = await loop.run_in_executor(pool, post_frames, urls, token, rate, seconds)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(len(a) < len(ids) for a in arrivals_per_dashboard):
        await asyncio.sleep(0.1)
    finished = True
    await asyncio.gather(*tasks)
    latencies, lost, duplicated = [], 0, 0
    posted = set(ids)
    for arrivals in arrivals_per_dashboard:
        lost += len(posted - set(arrivals))
        for values in arrivals.values():
            duplicated += len(values) - 1
            latencies.extend(values[:1])
    return {
        "frames": len(ids),
        "events": len(latencies),
        "lost": lost,
        "duplicated": duplicated,
        "latencies": latencies,
        "request_ms": request_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="frames per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--dashboards", type=int, default=10)
    parser.add_argument("--shapes", default="memory,redis,redis-pubsub")
    parser.add_argument("--repeat", type=int, default=3, help="runs of every shape, in turn")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--database-url", default=None, help="a THROWAWAY database")
    args = parser.parse_args()

    data_dir = _dashboard.configure(args.database_url)
    seeded = _dashboard.seed()
    cookie = _dashboard.session_cookie(seeded["inspector"])
    print(f"machine load average before the run: {os.getloadavg()[0]:.1f} (2 cores)")
    print(
        f"{args.dashboards} dashboards on line L1, {args.rate:g} frames/s of 640x480 JPEG "
        f"for {args.seconds:g} s; latency = client arrival - server sent_at (after commit)"
    )
    print(
        f"{'shape':<24}{'frames':>7}{'events':>8}{'lost':>6}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}{'POST p50':>10}"
    )
    labels = {
        "memory": "in-memory, 1 process",
        "redis": "redis, 2 processes",
        "redis-pubsub": "redis pubsub, 2 procs",
    }
    shapes = args.shapes.split(",")
    p = _dashboard.percentile
    summary = {shape: [] for shape in shapes}
    lost_any = False
    # Shapes take turns, so a busy spell of this shared machine hits them alike.
    for _ in range(args.repeat):
        for shape in shapes:
            count, redis_url = (1, None) if shape == "memory" else (2, args.redis_url)
            prefix = f"bench-{uuid.uuid4().hex[:8]}"
            layer = "redis-pubsub" if shape == "redis-pubsub" else "redis"
            with _dashboard.servers(count, data_dir, redis_url, prefix, layer) as running:
                urls = [server.url for server in running]
                result = asyncio.run(
                    run_shape(
                        urls, cookie, seeded["token"], args.rate, args.seconds, args.dashboards
                    )
                )
            lat = result["latencies"]
            row = (p(lat, 0.5), p(lat, 0.99), p(result["request_ms"], 0.5))
            summary[shape].append(row)
            lost_any = lost_any or bool(result["lost"] or result["duplicated"])
            print(
                f"{labels[shape]:<24}{result['frames']:>7}{result['events']:>8}"
                f"{result['lost']:>6}{row[0]:>9.1f}{row[1]:>9.1f}"
                f"{max(lat, default=float('nan')):>9.1f}{row[2]:>10.1f}"
            )
    print(f"medians of {args.repeat} run(s):")
    worst_p99 = 0.0
    for shape in shapes:
        p50, p99, post = (statistics.median(values) for values in zip(*summary[shape], strict=True))
        worst_p99 = max(worst_p99, p99)
        print(f"{labels[shape]:<24}{'':>21}{p50:>9.1f}{p99:>9.1f}{'':>9}{post:>10.1f}")
    print(f"machine load average after the run: {os.getloadavg()[0]:.1f} (2 cores)")
    met = not lost_any and worst_p99 < TARGET_P99_MS
    print(
        f"target: p99 < {TARGET_P99_MS:g} ms (median of runs), no event lost or duplicated: "
        f"{'met' if met else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
