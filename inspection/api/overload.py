"""Overload answered honestly: a bounded number of frames in flight, a rate per station.

Both are kept in this worker process's memory (no database or Redis round
trip on the refusal path, so a refusal is fast even when those are the
bottleneck). With several worker processes each one counts for itself: the
in-flight limit is per process by design, and the station rate applies per
process too (a camera keeps its connection to one worker, so in practice it
is the camera's rate).
"""

import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from rest_framework import exceptions, throttling

from inspection.api.permissions import station_of

logger = logging.getLogger(__name__)

# How long a refused device should wait: a frame takes tens of milliseconds,
# so the queue ahead of it drains within a second.
OVERLOAD_RETRY_AFTER_SECONDS = 1


class ServerBusy(exceptions.APIException):
    """503: this worker already has as many frames in flight as it may."""

    status_code = 503
    default_code = "server_busy"

    def __init__(self, limit: int):
        super().__init__(
            f"The server is judging {limit} frames already and takes no more for a moment; "
            f"nothing was stored. Retry in {OVERLOAD_RETRY_AFTER_SECONDS} s with the same "
            "Idempotency-Key."
        )
        # DRF's exception handler turns ``wait`` into the Retry-After header.
        self.wait = OVERLOAD_RETRY_AFTER_SECONDS


class FramesInFlight:
    """Counts the frames this process is working on; admits one only below the limit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    @contextmanager
    def slot(self, limit: int) -> Iterator[bool]:
        """Yield whether the frame was admitted (always, when ``limit`` is 0); free it after."""
        with self._lock:
            admitted = limit <= 0 or self.count < limit
            if admitted:
                self.count += 1
        try:
            yield admitted
        finally:
            if admitted:
                with self._lock:
                    self.count -= 1


frames_in_flight = FramesInFlight()

_last_overload_log = [0.0]


def log_overload() -> None:
    """Say that frames are being refused, at most once a second per process."""
    now = time.monotonic()
    if now - _last_overload_log[0] >= 1.0:
        _last_overload_log[0] = now
        logger.warning(
            "Overloaded: %d frames in flight, further frames answered 503", frames_in_flight.count
        )


@dataclass
class _Bucket:
    tokens: float
    updated: float


# Above this many stations remembered, full buckets (idle stations) are forgotten.
MAX_BUCKETS = 4096


class StationBuckets:
    """A token bucket per station: ``rate`` frames per second, bursts of ``burst``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    def take(self, station: str, *, rate: float, burst: int) -> float:
        """Take one token for ``station``: 0.0 when it may send now, else seconds to wait."""
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(station)
            if bucket is None:
                if len(self._buckets) >= MAX_BUCKETS:
                    self._forget_idle(now, rate=rate, burst=burst)
                bucket = self._buckets[station] = _Bucket(tokens=float(burst), updated=now)
            bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / rate

    def _forget_idle(self, now: float, *, rate: float, burst: int) -> None:
        refill = burst / rate
        idle = [key for key, b in self._buckets.items() if now - b.updated >= refill]
        for key in idle:
            del self._buckets[key]

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()


station_buckets = StationBuckets()


class StationRateExceeded(exceptions.Throttled):
    """429 naming the station and its rate, with Retry-After."""

    def __init__(self, station: str, rate: float, wait: float):
        super().__init__(
            wait=wait,
            # DRF adds "Expected available in N seconds." (N is also Retry-After).
            detail=f"Station {station} sends more than {rate:g} frames per second; "
            "nothing was stored. Slow down, and send it again with the same Idempotency-Key.",
        )


class StationFrameRate(throttling.BaseThrottle):
    """DRF throttle for the frame POST: ``STATION_FRAME_RATE`` per station (0 = no limit)."""

    def allow_request(self, request, view) -> bool:
        if request.method != "POST":
            return True
        rate = float(settings.LINESIGHT["STATION_FRAME_RATE"])
        if rate <= 0:
            return True
        device = station_of(request)
        code = device.code if device is not None else str(request.data.get("station", ""))
        burst = max(1, int(settings.LINESIGHT["STATION_FRAME_BURST"]))
        wait = station_buckets.take(code, rate=rate, burst=burst)
        if wait > 0:
            # Rounded up: a device that waits Retry-After finds a token.
            raise StationRateExceeded(code, rate, float(math.ceil(wait)))
        return True
