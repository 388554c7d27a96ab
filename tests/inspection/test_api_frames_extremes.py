"""Every field of the frame API with extreme values: a clear 400, never a 500, nothing stored.

A camera with a broken clock, a device library with a bug, a hostile client:
whatever it sends, the answer names what is wrong and no row or file is left.
"""

import io
import json

import pytest
from PIL import Image

from inspection.models import Inspection
from tests.conftest import stored_files
from tests.images import GREEN, RED, frame_bytes
from tests.inspection.test_api_frames import post_frame

EDGE = {"label": "ok", "confidence": "0.97", "model_version": "bottle:{number}"}


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def png(colour=RED, size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


# (field, value) sent with an otherwise good server frame.
SERVER_FIELDS = [
    ("station", "S" * 51),
    ("station", "ST1\x00"),
    ("station", "駅" * 10),
    ("station", "x" * 100_000),
    ("product", "NO-SUCH-SKU"),
    ("product", "p" * 10_000),
    ("product", "\U0001f4a5"),
    ("serial", "s" * 101),
    ("serial", "SN\x00"),
    ("lot", "l" * 101),
    ("lot", "\x00"),
    ("captured_at", "0001-01-01T00:00:00Z"),
    ("captured_at", "0001-01-01T00:00:00+14:00"),
    ("captured_at", "1900-01-01T00:00:00Z"),
    ("captured_at", "1970-01-01T00:00:00Z"),
    ("captured_at", "1999-12-31T23:59:59Z"),
    ("captured_at", "9999-12-31T23:59:59Z"),
    ("captured_at", "9999-12-31T23:59:59-12:00"),
    ("captured_at", "2026-13-45T99:99:99Z"),
    ("captured_at", "yesterday"),
    ("captured_at", "-1"),
    ("captured_at", "1" * 10_000),
    ("frame_id", "k" * 101),
    ("frame_id", "two words"),
    ("frame_id", "ключ"),
    ("frame_id", "key\n"),
    ("top_k", '[{"label": "ok", "confidence": 0.9}]'),  # top_k without an edge result
]

# (field, value) replacing one field of an otherwise good edge result.
EDGE_FIELDS = [
    ("label", "x" * 101),
    ("label", "未知"),
    ("label", "ok\x00"),
    ("confidence", "nan"),
    ("confidence", "inf"),
    ("confidence", "-inf"),
    ("confidence", "-0.1"),
    ("confidence", "1.0000001"),
    ("confidence", "1e309"),
    ("confidence", "9" * 2_000),
    ("confidence", "high"),
    ("model_version", "bottle:-1"),
    ("model_version", "bottle:99999999999"),
    ("model_version", ":1"),
    ("model_version", "bottle"),
    ("top_k", "[" * 100_000 + "]" * 100_000),
    ("top_k", "[" * 3_000),
    ("top_k", "[" * 40 + "]" * 40),
    ("top_k", json.dumps([{"label": "ok", "confidence": {"a": {"b": {"c": [1]}}}}])),
    ("top_k", json.dumps([{"label": ["ok"], "confidence": 0.5}])),
    ("top_k", '[{"label": "ok", "confidence": NaN}]'),
    ("top_k", '[{"label": "ok", "confidence": Infinity}]'),
    ("top_k", '[{"label": "ok", "confidence": 1e999}]'),
    ("top_k", json.dumps([{"label": "ok", "confidence": -0.5}])),
    ("top_k", json.dumps([{"label": "ok", "confidence": 0.5}] * 1_000)),
    ("top_k", json.dumps([{"label": "nope", "confidence": 0.5}])),
    ("top_k", json.dumps([{"label": "crack", "confidence": 0.99}])),  # not the top label
    ("top_k", '{"label": "ok"}'),
    ("top_k", '"ok"'),
    ("top_k", "not json"),
    ("top_k", "x" * 200_000),
]

IMAGES = {
    "empty": b"",
    "one-byte": b"\xff",
    "jpeg-header-only": frame_bytes(RED)[:200],
    "truncated-jpeg": truncated(frame_bytes(RED, size=(640, 480))),
    "truncated-png": truncated(png(size=(640, 480))),
    "text": "ceci n'est pas une image ✓".encode(),
    "zeros": b"\x00" * 10_000,
}


@pytest.fixture
def api_client(frame_client):
    """Every test here runs twice: through Django's view and through the lean ASGI route."""
    return frame_client


@pytest.fixture
def nothing_stored(line_setup, _media_root):
    """Asserts after the test that no inspection row and no new file exist."""
    before = stored_files(_media_root)
    yield
    assert Inspection.objects.count() == 0
    assert stored_files(_media_root) == before


def assert_refused(response) -> None:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    body = response.json()
    assert isinstance(body["detail"], str) and len(body["detail"]) > 5, body


@pytest.mark.parametrize(("field", "value"), SERVER_FIELDS, ids=lambda v: repr(v)[:30])
def test_extreme_field_values_of_a_frame_are_refused(
    line_setup, api_client, nothing_stored, field, value
):
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {line_setup['token']}")
    fields = {"station": "ST1", field: value}
    assert_refused(post_frame(api_client, image=frame_bytes(RED), **fields))


@pytest.mark.parametrize(("field", "value"), EDGE_FIELDS, ids=lambda v: repr(v)[:30])
def test_extreme_values_of_an_edge_result_are_refused(
    line_setup, api_client, nothing_stored, field, value
):
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {line_setup['token']}")
    edge = {**EDGE, "model_version": f"bottle:{line_setup['version'].number}", field: value}
    assert_refused(post_frame(api_client, image=frame_bytes(RED), **edge))


@pytest.mark.parametrize("edge", [False, True], ids=["server", "edge"])
@pytest.mark.parametrize("name", sorted(IMAGES))
def test_broken_images_are_refused_on_every_path(
    line_setup, api_client, nothing_stored, name, edge
):
    """An edge result does not vouch for the image: it is decoded in full either way."""
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {line_setup['token']}")
    fields = {**EDGE, "model_version": f"bottle:{line_setup['version'].number}"} if edge else {}
    assert_refused(post_frame(api_client, image=IMAGES[name], **fields))


@pytest.mark.parametrize(
    "header", ["k" * 101, "two words", "ключ".encode().decode("latin-1")], ids=["long", "sp", "u"]
)
def test_a_malformed_idempotency_key_header_is_refused(
    line_setup, api_client, nothing_stored, header
):
    api_client.credentials(
        HTTP_AUTHORIZATION=f"Token {line_setup['token']}", HTTP_IDEMPOTENCY_KEY=header
    )
    assert_refused(post_frame(api_client, image=frame_bytes(GREEN)))


def test_the_earliest_accepted_capture_time_is_stored_as_sent(line_setup, api_client):
    """The bound is documented (README): 2000-01-01 UTC is the first accepted instant."""
    response = post_frame(
        api_client,
        token=line_setup["token"],
        image=frame_bytes(RED),
        captured_at="2000-01-01T00:00:00Z",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["captured_at"].startswith("2000-01-01T")


def test_a_whole_edge_frame_with_its_top_k_is_accepted(line_setup, api_client):
    """The bounds leave room for a real top_k: every label, flat, as devices send it."""
    top_k = [
        {"label": "ok", "confidence": 0.97},
        {"label": "missing_cap", "confidence": 0.02},
        {"label": "crack", "confidence": 0.01},
    ]
    response = post_frame(
        api_client,
        token=line_setup["token"],
        image=frame_bytes(RED),
        **{**EDGE, "model_version": f"bottle:{line_setup['version'].number}"},
        top_k=json.dumps(top_k),
    )
    assert response.status_code == 201, response.json()
    assert response.json()["source"] == "edge"
