"""Where a frame's milliseconds go: the product's frame path, step by step.

Posts 640x480 JPEGs through ``POST /api/v1/inspections/`` in this process
(Django's async test client: the ASGI handler, the view in its sync thread,
DRF, the service, the runtime, storage, the database and the event as in
production; without uvicorn's HTTP parsing, which ``inspection_api.py``
measures end to end) and times each
step with ``perf_counter`` spans wrapped around the functions that do it.
Times are exclusive (a step's inner steps are not counted twice); each row is
the median over the frames, and "everything else" is the request's total
minus the named steps: the ASGI handler, middleware, and the hops between
the event loop and the view's thread (on a busy machine, each hop waits for
the scheduler).

With ``--lean`` the frames go through ``config.asgi.application`` instead
(the ASGI router, where a device's frame takes the lean route of
``inspection.api.frames_asgi``), and Django's ASGI handler
(``config.asgi.django_asgi_app``, called the same way: a thread per request,
the request signals closing connections as in a server) is measured in the
same run, in alternating blocks, for the comparison. A frame's time is until its
answer's last byte was handed to the server (events go out after that).

    .venv/bin/python benchmarks/frame_profile.py [--database sqlite|postgres]
        [--model demo|mobilenetv2] [--frames 300] [--compare] [--cprofile 25] [--lean]
"""

import argparse
import asyncio
import functools
import importlib
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

# (step, dotted owner, attribute): the functions that do each step of a frame.
STEPS = [
    ("DB connect (per request)", "django.db.backends.base.base.BaseDatabaseWrapper", "connect"),
    (
        "auth: token -> station",
        "masterdata.authentication.StationTokenAuthentication",
        "authenticate",
    ),
    ("throttle", "inspection.api.overload.StationFrameRate", "allow_request"),
    ("multipart parse", "rest_framework.request.Request", "_parse"),
    ("DRF serializer", "inspection.api.serializers.InspectionCreateSerializer", "is_valid"),
    ("line facts", "inspection.services", "line_facts"),
    ("serving lookup", "inspection.services", "serving_for"),
    ("header check (open_frame)", "inspection.services", "_decoded"),
    ("decode (JPEG)", "PIL.ImageFile.ImageFile", "load"),
    ("preprocess", "inspection.runtime", "model_input"),
    ("invoke (TFLite)", "models_registry.runtime.tensorflow.TFLiteClassifier", "classify"),
    ("verdict rules", "inspection.services", "judge"),
    ("plant time / shift", "inspection.services", "plant_time"),
    ("storage write", "django.core.files.storage.FileSystemStorage", "save"),
    ("build row", "inspection.services", "_inspection_row"),
    ("INSERT", "django.db.models.Model", "save_base"),
    ("event publish", "inspection.events", "inspection_created"),
    ("response body", "inspection.api.frames", "inspection_representation"),
    ("JSON render", "rest_framework.renderers.JSONRenderer", "render"),
    ("rest of the view", "inspection.api.views.InspectionListCreateView", "dispatch"),
    ("rest of the lean route (sync)", "inspection.api.frames_asgi", "_answer"),
]


class Spans:
    """Exclusive time per step and per frame; spans nest per thread."""

    def __init__(self):
        self.local = threading.local()
        self.frame: dict[str, float] = defaultdict(float)

    def wrap(self, name: str, func):
        @functools.wraps(func)
        def timed(*args, **kwargs):
            stack = self.local.__dict__.setdefault("stack", [])
            stack.append(0.0)  # time spent in inner spans
            started = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                inner = stack.pop()
                self.frame[name] += elapsed - inner
                if stack:
                    stack[-1] += elapsed

        return timed


def resolve(dotted: str):
    """A module or a class from its dotted path."""
    try:
        return importlib.import_module(dotted)
    except ImportError:
        module, _, name = dotted.rpartition(".")
        return getattr(importlib.import_module(module), name)


def instrument(spans: Spans) -> list[str]:
    """Wrap every step's function; returns the steps that could not be found."""
    missing = []
    for name, dotted, attribute in STEPS:
        try:
            owner = resolve(dotted)
        except (ImportError, AttributeError):
            missing.append(name)
            continue
        func = getattr(owner, attribute, None)
        if func is None:
            missing.append(name)
            continue
        setattr(owner, attribute, spans.wrap(name, func))
    return missing


def prepare(args) -> tuple:
    """A database, a station serving ``args.model`` with a token, and the frames."""
    import inspection_api

    data_dir = Path(tempfile.mkdtemp(prefix="linesight-profile-"))
    args.bench_database = "linesight_profile"
    inspection_api.setup_environment(args, data_dir)
    os.environ["LINESIGHT_ALLOWED_HOSTS"] = "testserver"  # the test client's host
    import django

    django.setup()
    from demo import frames as demo_frames
    from masterdata.models import Line, Plant

    plant = Plant.objects.create(code="PROF", name="Profile plant", time_zone="Europe/Paris")
    line = Line.objects.create(code="PL1", plant=plant)
    if args.model == "mobilenetv2":
        artifact = inspection_api.mobilenet_zip(data_dir)
    else:
        from demo.seed import demo_artifact

        artifact, _ = demo_artifact(demo_dir=ROOT / "var" / "demo", log=print)
    version, token, _ = inspection_api.register(args.model, artifact, "P-1", line)
    frames_dir = data_dir / "frames"
    demo_frames.write_frames(frames_dir, per_class=4, seed=7)
    images = [p.read_bytes() for p in sorted(frames_dir.rglob("*.jpg"))]
    return data_dir, version, token, images


class RouterClient:
    """Posts through an ASGI app of ``config.asgi`` as uvicorn would hand it a request:
    ``application`` (the router, so the lean route) or ``django_asgi_app`` (Django's
    handler), with Django's request signals connected as in a server."""

    def __init__(self, name: str = "application"):
        import config.asgi

        self.app = getattr(config.asgi, name)

    async def post(self, path: str, data: dict, headers: dict):
        from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

        body = encode_multipart(BOUNDARY, data)
        raw = {"content-type": MULTIPART_CONTENT, "content-length": str(len(body))}
        raw |= {"host": "testserver", **{k.lower(): v for k, v in headers.items()}}
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.encode(), v.encode()) for k, v in raw.items()],
            "client": ("127.0.0.1", 0),
            "server": ("testserver", 80),
        }
        given = False
        answer = {"status": 0, "content": b"", "answered": 0.0}

        async def receive():
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()

        async def send(message):
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["content"] += message.get("body", b"")
                if not message.get("more_body"):
                    answer["answered"] = time.perf_counter()

        await self.app(scope, receive, send)
        return type("Answer", (), {"status_code": answer["status"], **answer})


def post_frames(client, token: str, images: list[bytes], count: int, spans=None) -> list[float]:
    """Post ``count`` frames through the ASGI handler, one after the other; their times."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    async def post_all() -> list[float]:
        totals = []
        for i in range(count):
            upload = SimpleUploadedFile("f.jpg", images[i % len(images)], "image/jpeg")
            if spans is not None:
                spans.frame = defaultdict(float)
            started = time.perf_counter()
            response = await client.post(
                "/api/v1/inspections/",
                {"station": "P-1", "image": upload},
                headers={"Authorization": f"Token {token}"},
            )
            answered = getattr(response, "answered", 0.0) or time.perf_counter()
            totals.append((answered - started) * 1000)
            if response.status_code != 201:
                raise SystemExit(f"{response.status_code}: {response.content[:300]!r}")
            if spans is not None:
                spans.frames.append(dict(spans.frame))
        return totals

    return asyncio.run(post_all())


def print_table(title: str, frames: list[dict], totals: list[float]) -> None:
    print(f"\n{title}: {len(totals)} frames, medians (ms per frame)")
    named = 0.0
    for name, _, _ in STEPS:
        values = [frame.get(name, 0.0) * 1000 for frame in frames]
        median = statistics.median(values)
        named += median
        print(f"  {name:30}{median:9.3f}")
    total = statistics.median(totals)
    print(f"  {'everything else (ASGI, hops)':30}{total - named:9.3f}")
    # (the lean route's sync part is one step of its own; its "everything else" is the
    # body read, the one thread hop and the send)
    print(f"  {'total (in-process request)':30}{total:9.3f}")


def earlier_lookups() -> dict:
    """The token and line-facts lookups as they were before issue 12 (ORM query compiled on
    every frame; line facts kept 30 s per worker), to compare against in the same run."""
    from inspection import selectors, services
    from masterdata import authentication
    from masterdata.models import Product, Shift, Station

    kept: dict = {}

    def orm_station(token_hash):
        return Station.objects.select_related("line__plant").filter(token_hash=token_hash).first()

    def line_facts_30s(*, station):
        cached = kept.get(station.line_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        facts = selectors.LineFacts(
            products=tuple(
                Product.objects.filter(lines=station.line_id, archived=False).order_by("sku")[:10]
            ),
            shifts=tuple(Shift.objects.filter(plant_id=station.line.plant_id)),
        )
        kept[station.line_id] = (time.monotonic() + 30, facts)
        return facts

    return {
        (authentication, "station_for_token_hash"): orm_station,
        (services, "line_facts"): line_facts_30s,
    }


def compare_with_earlier(client, token: str, images: list[bytes], frames: int) -> None:
    """Request p50 with today's lookups and with the earlier ones, in alternating blocks."""
    earlier = earlier_lookups()
    today = {target: getattr(*target) for target in earlier}
    times: dict[str, list[float]] = {"today": [], "earlier": []}
    for _ in range(4):
        for name, functions in (("earlier", earlier), ("today", today)):
            for (owner, attribute), function in functions.items():
                setattr(owner, attribute, function)
            times[name] += post_frames(client, token, images, frames // 4)
    for (owner, attribute), function in today.items():
        setattr(owner, attribute, function)
    p50 = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"request p50, alternating blocks: earlier lookups {p50['earlier']:.3f} ms, "
        f"today's {p50['today']:.3f} ms ({p50['today'] - p50['earlier']:+.3f} ms)"
    )


def compare_paths(lean, django, token: str, images: list[bytes], frames: int) -> None:
    """Request p50 through the lean route and through Django's handler, alternating blocks."""
    post_frames(django, token, images, 30)
    times: dict[str, list[float]] = {"django": [], "lean": []}
    for _ in range(4):
        for name, client in (("django", django), ("lean", lean)):
            times[name] += post_frames(client, token, images, frames // 4)
    p50 = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"request p50, alternating blocks: Django's handler {p50['django']:.3f} ms, "
        f"lean route {p50['lean']:.3f} ms ({p50['lean'] - p50['django']:+.3f} ms)"
    )


def print_cprofile(client, token: str, images: list[bytes], args) -> None:
    """cProfile of the view, in the thread that runs it (the ASGI handler's sync thread)."""
    import cProfile
    import pstats

    from inspection.api.views import InspectionListCreateView

    profiler = cProfile.Profile()
    dispatch = InspectionListCreateView.dispatch

    def profiled(*a, **kw):
        profiler.enable()
        try:
            return dispatch(*a, **kw)
        finally:
            profiler.disable()

    InspectionListCreateView.dispatch = profiled
    post_frames(client, token, images, args.frames)
    InspectionListCreateView.dispatch = dispatch
    print(f"\ncProfile of the view, top {args.cprofile} by own time over {args.frames} frames")
    stats = pstats.Stats(profiler).sort_stats("tottime")
    stats.print_stats(args.cprofile)
    stats.print_callers(5)  # who calls the five most expensive


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--postgres-admin-url", default="postgres://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis-url", default="", help="a Redis channel layer (default: none)")
    parser.add_argument("--model", choices=["demo", "mobilenetv2"], default="mobilenetv2")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument(
        "--compare", action="store_true", help="also time the earlier token/line-facts lookups"
    )
    parser.add_argument("--cprofile", type=int, default=0, help="also print the top N functions")
    parser.add_argument(
        "--lean",
        action="store_true",
        help="post through config.asgi (the lean frame route); Django's path measured beside it",
    )
    args = parser.parse_args()
    data_dir, version, token, images = prepare(args)
    from django.test import AsyncClient

    client = RouterClient() if args.lean else AsyncClient()
    post_frames(client, token, images, 30)  # warm: model, caches, connections
    if args.lean:
        compare_paths(client, RouterClient("django_asgi_app"), token, images, args.frames)
    plain = post_frames(client, token, images, args.frames)
    if args.compare:
        compare_with_earlier(client, token, images, args.frames)
    spans = Spans()
    spans.frames = []
    missing = instrument(spans)
    totals = post_frames(client, token, images, args.frames, spans)
    print(
        f"\n{args.model} ({version.input_width}x{version.input_height}) on {args.database}"
        f"{', Redis layer' if args.redis_url else ''}; 640x480 JPEG frames"
    )
    print(f"uninstrumented request p50 {statistics.median(plain):.3f} ms")
    if missing:
        print(f"not found (not timed): {', '.join(missing)}")
    print_table("Steps", spans.frames, totals)
    if args.cprofile:
        print_cprofile(client, token, images, args)
    import shutil

    shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
