"""Idempotent frames: a retry with the frame's key returns the stored frame, never a second row."""

import http.server
import threading
import uuid
from pathlib import Path

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections
from rest_framework.test import APIClient

from inspection.device import Device
from inspection.models import Inspection
from tests.conftest import committed_db, stored_files
from tests.images import BLUE, GREEN, RED, frame_bytes
from tests.inspection.test_api_frames import URL, post_frame


def post_keyed(client, key: str, *, token=None, **fields):
    """``post_frame`` with the key in the ``Idempotency-Key`` header."""
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    payload = {"station": fields.pop("station", "ST1"), **fields}
    payload["image"] = SimpleUploadedFile("frame.jpg", payload.pop("image"), "image/jpeg")
    return client.post(URL, payload, format="multipart", headers={"Idempotency-Key": key})


@pytest.fixture
def api_client(frame_client):
    """Every test here runs twice: through Django's view and through the lean ASGI route."""
    return frame_client


@pytest.fixture
def device(line_setup, api_client):
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {line_setup['token']}")
    return api_client


def test_a_retry_with_the_same_key_returns_the_stored_frame(device, _media_root):
    image = frame_bytes(GREEN)
    first = post_keyed(device, "cam1-000042", image=image, serial="SN-1")
    files = stored_files(_media_root)
    again = post_keyed(device, "cam1-000042", image=image, serial="SN-1")

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    assert Inspection.objects.count() == 1
    assert stored_files(_media_root) == files  # the retry's copy of the image is not kept


def test_the_key_may_come_as_a_frame_id_field(device):
    image = frame_bytes(RED)
    first = post_frame(device, image=image, frame_id="f-1")
    again = post_frame(device, image=image, frame_id="f-1")
    header = post_keyed(device, "f-1", image=image)
    assert (first.status_code, again.status_code, header.status_code) == (201, 200, 200)
    assert again.json()["id"] == header.json()["id"] == first.json()["id"]
    assert Inspection.objects.count() == 1


def test_frames_without_a_key_or_with_new_keys_are_all_stored(device):
    image = frame_bytes(RED)
    statuses = [post_frame(device, image=image).status_code for _ in range(2)]
    statuses += [post_frame(device, image=image, frame_id=f"k{i}").status_code for i in range(2)]
    assert statuses == [201] * 4
    assert Inspection.objects.count() == 4


def test_a_key_reused_for_another_image_is_refused(device, _media_root):
    post_frame(device, image=frame_bytes(RED), frame_id="same")
    files = stored_files(_media_root)
    response = post_frame(device, image=frame_bytes(BLUE), frame_id="same")
    assert response.status_code == 422
    assert "another image" in response.json()["detail"]
    assert Inspection.objects.count() == 1
    assert stored_files(_media_root) == files


def test_header_and_field_naming_different_keys_are_refused(device):
    response = post_keyed(device, "b", image=frame_bytes(RED), frame_id="a")
    assert response.status_code == 400
    assert "differ" in response.json()["detail"]
    assert Inspection.objects.count() == 0


def test_keys_belong_to_a_station(line_setup, device, api_client):
    from tests import factories

    other, token = factories.station_with_token(code="ST2", line_obj=line_setup["line"])
    factories.deployment(station_obj=other, version=line_setup["version"])
    image = frame_bytes(RED)
    mine = post_frame(device, image=image, frame_id="0001")
    theirs = post_frame(APIClient(), token=token, station="ST2", image=image, frame_id="0001")
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]


# --- Races and lost answers, through real connections --------------------------


@committed_db
@pytest.mark.slow
def test_concurrent_posts_with_one_key_make_one_row(line_setup, _media_root):
    """Two workers receive the same frame at once: the unique key keeps one row, both answer it."""
    image = frame_bytes(GREEN)
    rounds, senders = 8, 3
    answers: list[tuple[str, int, int]] = []

    def send(key: str, barrier: threading.Barrier) -> None:
        client = APIClient(raise_request_exception=False)
        try:
            barrier.wait(timeout=30)
            response = post_keyed(client, key, token=line_setup["token"], image=image)
            body = response.json() if response.status_code < 500 else {}
            answers.append((key, response.status_code, body.get("id")))
        finally:
            connections.close_all()

    for round_number in range(rounds):
        barrier = threading.Barrier(senders)
        key = f"race-{round_number}"
        threads = [threading.Thread(target=send, args=(key, barrier)) for _ in range(senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    assert len(answers) == rounds * senders
    assert {status for _, status, _ in answers} <= {200, 201}, answers
    for round_number in range(rounds):
        mine = [a for a in answers if a[0] == f"race-{round_number}"]
        assert len({pk for _, _, pk in mine}) == 1, mine  # everyone was told the same frame
        assert sum(status == 201 for _, status, _ in mine) == 1, mine
    assert Inspection.objects.count() == rounds
    frames = [name for name in stored_files(_media_root) if name.startswith("frames/")]
    assert len(frames) == rounds  # the losers' copies of the image were removed


class FlakyProxy(http.server.ThreadingHTTPServer):
    """Forwards frames to the live server; the first answer is lost or replaced by a 503."""

    def __init__(self, target: str, fault: str):
        super().__init__(("127.0.0.1", 0), _FlakyHandler)
        self.target, self.fault, self.posts = target, fault, []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _FlakyHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        server: FlakyProxy = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server.posts.append(self.headers.get("Idempotency-Key"))
        first = len(server.posts) == 1
        if first and server.fault == "503":
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        skip = {"host", "content-length", "connection"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        answer = requests.post(server.target + self.path, data=body, headers=headers, timeout=30)
        if first and server.fault == "lost-answer":
            self.close_connection = True  # stored on the server; the camera never hears back
            return
        self.send_response(answer.status_code)
        self.send_header("Content-Type", answer.headers.get("Content-Type", ""))
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, *args):
        pass


@committed_db
@pytest.mark.parametrize("fault", ["lost-answer", "503"])
def test_the_reference_device_retries_with_the_same_key(line_setup, live_server, tmp_path, fault):
    proxy = FlakyProxy(live_server.url, fault)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        frame = Path(tmp_path / "frame.jpg")
        frame.write_bytes(frame_bytes(GREEN))
        camera = Device(url=proxy.url, station="ST1", token=line_setup["token"], backoff=0.01)
        response = camera.post(frame, serial="SN-9")
    finally:
        proxy.shutdown()
        proxy.server_close()

    assert len(proxy.posts) == 2 and proxy.posts[0] == proxy.posts[1]
    uuid.UUID(proxy.posts[0])  # a fresh key per frame
    assert response.status_code == (200 if fault == "lost-answer" else 201)
    assert response.json()["verdict"] == "fail"
    assert Inspection.objects.count() == 1
