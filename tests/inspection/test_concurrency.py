"""Frames, model swaps and reviews at the same time, through the real API views.

Several threads (each with its own database connection) post frames to one
station while another alternates its deployment between two ready versions
and an inspector confirms the frames that wait for review.
On PostgreSQL a swap used to take ``FOR UPDATE`` on the station and
deployment rows that every frame's INSERT takes ``FOR KEY SHARE`` on, in the
other order: deadlocks answered 500 to frames and stalled swaps. On SQLite
the same test checks that writers queue instead of failing.
"""

import threading
import time

import pytest
from django.db import connections
from rest_framework.test import APIClient

from inspection.runtime import model_cache
from tests import factories
from tests.conftest import committed_db
from tests.images import GREEN, RED, frame_bytes
from tests.registry import ready_version

pytestmark = [committed_db, pytest.mark.slow]

FRAME_THREADS = 3
SWAPS = 30


def _frame_poster(token: str, stop: threading.Event, results: list, image: bytes) -> None:
    client = APIClient(raise_request_exception=False)  # a 500 is an answer to count
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    try:
        while not stop.is_set():
            response = client.post(
                "/api/v1/inspections/",
                {"station": "ST1", "image": _upload(image)},
                format="multipart",
            )
            body = response.json() if response.status_code < 500 else response.content[:300]
            version = body.get("model_version") if response.status_code == 201 else None
            results.append((response.status_code, version, body))
    finally:
        connections.close_all()


def _upload(image: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("frame.jpg", image, "image/jpeg")


def _swapper(token: str, numbers: list[int], swaps: list, errors: list) -> None:
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    try:
        for i in range(SWAPS):
            number = numbers[(i + 1) % 2]
            started = time.perf_counter()
            response = client.post(
                "/api/v1/deployments/",
                {"station": "ST1", "model": "bottle", "version": number},
                format="json",
            )
            swaps.append(time.perf_counter() - started)
            if response.status_code != 201:
                errors.append((response.status_code, response.content[:300]))
            time.sleep(0.02)
    finally:
        connections.close_all()


def _reviewer(token: str, stop: threading.Event, frames: list, decisions: list) -> None:
    """An inspector confirming the frames that wait for review, as they come in."""
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    done: set[int] = set()
    try:
        while not stop.is_set():
            pending = [
                body["id"]
                for status, _, body in list(frames)
                if status == 201 and body["review_status"] == "pending" and body["id"] not in done
            ]
            for pk in pending[:5]:
                response = client.post(
                    f"/api/v1/inspections/{pk}/verifications/",
                    {"decision": "confirm"},
                    format="json",
                )
                decisions.append((response.status_code, response.content[:200]))
                done.add(pk)
            time.sleep(0.02)
    finally:
        connections.close_all()


def test_swapping_the_model_while_frames_arrive_fails_no_frame():
    plant = factories.plant(code="PL1")
    line = factories.line(code="L1", plant_obj=plant)
    station, device_token = factories.station_with_token(code="ST1", line_obj=line)
    first, second = ready_version(model_name="bottle"), ready_version(model_name="bottle")
    factories.deployment(station_obj=station, version=first, confidence_threshold=0.8)
    for version in (first, second):
        model_cache().get(version)  # loaded before the burst, as activation's preload does
    engineer_token = factories.api_token(factories.engineer())
    inspector_token = factories.api_token(factories.inspector())

    stop = threading.Event()
    frames: list = []
    swaps: list[float] = []
    swap_errors: list = []
    decisions: list = []
    posters = [
        threading.Thread(
            target=_frame_poster,
            args=(device_token, stop, frames, frame_bytes(RED if i % 2 else GREEN)),
        )
        for i in range(FRAME_THREADS)
    ]
    reviewer = threading.Thread(target=_reviewer, args=(inspector_token, stop, frames, decisions))
    swapper = threading.Thread(
        target=_swapper, args=(engineer_token, [first.number, second.number], swaps, swap_errors)
    )
    for thread in [*posters, reviewer]:
        thread.start()
    swapper.start()
    swapper.join(timeout=120)
    stop.set()
    for thread in [*posters, reviewer]:
        thread.join(timeout=60)

    assert not swapper.is_alive(), "the swaps did not finish within two minutes"
    assert swap_errors == []
    assert len(swaps) == SWAPS
    failed = [(status, body) for status, _, body in frames if status != 201]
    assert failed == [], f"{len(failed)} of {len(frames)} frames failed, e.g. {failed[:3]}"
    assert len(frames) >= SWAPS
    deployed = {("bottle", first.number), ("bottle", second.number)}
    named = {(v["model"], v["version"]) for _, v, _ in frames if v}
    assert named <= deployed
    assert named == deployed, "frames never saw the second version: the swaps did not apply"
    assert max(swaps) < 10.0, f"slowest swap took {max(swaps):.1f} s"
    # The inspector's decisions went through at the same time (green frames wait for review).
    assert decisions and {status for status, _ in decisions} == {201}, decisions[:3]
