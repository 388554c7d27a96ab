"""A reference station: posts a folder of frames to the API at a steady rate."""

import itertools
import random
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests
from django.core.management.base import BaseCommand, CommandError

from inspection.device import Device, DeviceError, image_files


class Command(BaseCommand):
    help = (
        "Post frames from a folder to a LineSight server as one station would "
        "(or run the station's model itself: --edge)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", required=True, help="Server, e.g. http://127.0.0.1:8000")
        parser.add_argument("--station", required=True, help="Station code")
        parser.add_argument("--token", required=True, help="The station's device token")
        parser.add_argument("--images", required=True, type=Path, help="Folder of JPEG/PNG frames")
        parser.add_argument("--rate", type=float, default=1.0, help="Frames per second (default 1)")
        parser.add_argument(
            "--count", type=int, default=0, help="Stop after this many frames (0: run until Ctrl-C)"
        )
        parser.add_argument("--product", help="Product SKU, where the line runs several")
        parser.add_argument(
            "--edge",
            action="store_true",
            help="Run the station's TFLite model here and post the result",
        )
        parser.add_argument("--seed", type=int, default=None, help="Shuffle frames with this seed")
        parser.add_argument("--lot", default="", help="Lot number to send with every frame")

    def handle(self, *args, **options):
        files = image_files(options["images"])
        if not files:
            raise CommandError(f"No .jpg/.jpeg/.png frames under {options['images']}.")
        if options["rate"] <= 0:
            raise CommandError("--rate must be above 0.")
        if options["seed"] is not None:
            random.Random(options["seed"]).shuffle(files)  # noqa: S311 (not security)
        device = Device(
            url=options["url"],
            station=options["station"],
            token=options["token"],
            product=options["product"],
        )
        tally = _Tally()
        try:
            frames = itertools.islice(itertools.cycle(files), options["count"] or None)
            for number, path in enumerate(_paced(frames, options["rate"]), start=1):
                self._send(device, number, path, options, tally)
        except KeyboardInterrupt:
            pass
        self.stdout.write(f"{options['station']}: {tally.summary()}")
        if tally.errors and not tally.sent:
            raise CommandError("No frame was accepted.")

    def _send(
        self, device: Device, number: int, path: Path, options: dict, tally: "_Tally"
    ) -> None:
        """Post one frame and count what came back; errors are reported, not raised."""
        started = time.perf_counter()
        try:
            response = device.post(
                path,
                serial=f"{options['station']}-{number:06d}",
                lot=options["lot"],
                edge=options["edge"],
            )
        except (requests.RequestException, DeviceError) as exc:
            tally.errors += 1
            self.stderr.write(f"frame {number}: {exc}; retrying in 2 s")
            time.sleep(2)
            return
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code not in (200, 201):  # 200: a retry answered with the stored frame
            tally.errors += 1
            self.stderr.write(f"frame {number}: HTTP {response.status_code} {response.text[:200]}")
            return
        body = response.json()
        tally.verdicts[body["verdict"]] += 1
        tally.latencies.append(elapsed)
        if options["verbosity"] >= 2 or number % max(1, int(options["rate"] * 10)) == 0:
            self.stdout.write(
                f"#{body['id']} {path.name}: {body['verdict']} {body['label']} "
                f"{body['confidence']:.2f} ({body['latency_ms']:.1f} ms server, "
                f"{elapsed:.1f} ms round trip)"
            )


@dataclass
class _Tally:
    """What the station's frames got back: verdicts, round trips, errors."""

    verdicts: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def sent(self) -> int:
        return sum(self.verdicts.values())

    def summary(self) -> str:
        verdicts = ", ".join(f"{v} {k}" for k, v in sorted(self.verdicts.items())) or "none"
        median = f"{statistics.median(self.latencies):.1f} ms" if self.latencies else "n/a"
        return f"{self.sent} frames ({verdicts}), {self.errors} errors, median round trip {median}"


def _paced(paths: Iterable[Path], rate: float) -> Iterator[Path]:
    """``paths`` at ``rate`` per second; after a stall it catches up by one frame, not a burst."""
    interval = 1.0 / rate
    next_at = time.monotonic()
    for path in paths:
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        next_at = max(next_at + interval, time.monotonic() - interval)
        yield path
