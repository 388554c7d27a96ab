"""Reading inspections back: filters, cursor pages, detail, images, permissions."""

import datetime as dt

import pytest

from tests import factories
from tests.images import BLUE, GREEN, GREY, RED, frame_bytes
from tests.inspection.test_api_frames import post_frame

URL = "/api/v1/inspections/"


@pytest.fixture
def frames(line_setup, api_client):
    """Four frames of ST1 (pass, fail, fail, review) and one of ST2 on another line."""
    token = line_setup["token"]
    ids = [
        post_frame(api_client, token=token, image=frame_bytes(c)).json()["id"]
        for c in (RED, GREEN, BLUE, GREY)
    ]
    other_line = factories.line(code="L2", plant_obj=line_setup["plant"])
    station2, token2 = factories.station_with_token(code="ST2", line_obj=other_line)
    factories.deployment(station_obj=station2, version=line_setup["version"])
    ids.append(
        post_frame(api_client, token=token2, station="ST2", image=frame_bytes(RED)).json()["id"]
    )
    api_client.credentials()
    return ids


@pytest.fixture
def viewer_client(db, api_client):
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(factories.viewer())}")
    return api_client


def ids_of(response):
    return [row["id"] for row in response.json()["results"]]


def test_list_is_newest_first(frames, viewer_client):
    assert ids_of(viewer_client.get(URL)) == sorted(frames, reverse=True)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("station=ST1", [0, 1, 2, 3]),
        ("line=L2", [4]),
        ("verdict=fail", [1, 2]),
        ("review_status=pending", [1, 2, 3]),
        ("model=bottle&model_version=1", [0, 1, 2, 3, 4]),
        ("model_version=2", []),
    ],
)
def test_filters(frames, viewer_client, query, expected):
    response = viewer_client.get(f"{URL}?{query}")
    assert response.status_code == 200
    assert sorted(ids_of(response)) == [frames[i] for i in expected]


def test_date_range_filter(frames, viewer_client):
    now = dt.datetime.now(dt.UTC)
    future = (now + dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    past = (now - dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert len(ids_of(viewer_client.get(URL, {"captured_after": past}))) == 5
    assert ids_of(viewer_client.get(URL, {"captured_after": future})) == []
    assert len(ids_of(viewer_client.get(URL, {"captured_before": future}))) == 5


def test_catch_up_after_an_id(frames, viewer_client):
    assert sorted(ids_of(viewer_client.get(URL, {"after_id": frames[2]}))) == frames[3:]


def test_bad_filter_value_is_a_400(frames, viewer_client):
    response = viewer_client.get(URL, {"verdict": "maybe"})
    assert response.status_code == 400
    assert "verdict" in response.json()["detail"]


def test_cursor_pages_cover_everything_once(frames, viewer_client):
    seen, url = [], f"{URL}?page_size=2"
    while url:
        body = viewer_client.get(url).json()
        seen += [row["id"] for row in body["results"]]
        url = body["next"]
    assert seen == sorted(frames, reverse=True)


def test_detail_and_image(frames, viewer_client):
    body = viewer_client.get(f"{URL}{frames[1]}/").json()
    assert (body["verdict"], body["defect_type"]) == ("fail", "missing_cap")
    image = viewer_client.get(body["image_url"])
    assert image.status_code == 200 and image["Content-Type"] == "image/jpeg"


def test_device_sees_only_its_own_station(frames, line_setup, api_client):
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {line_setup['token']}")
    assert sorted(ids_of(api_client.get(URL))) == frames[:4]
    assert api_client.get(f"{URL}{frames[4]}/").status_code == 403
    assert api_client.get(f"{URL}{frames[4]}/image/").status_code == 403


def test_reading_needs_login_and_permission(frames, api_client):
    assert api_client.get(URL).status_code == 401
    assert api_client.get(f"{URL}{frames[0]}/image/").status_code == 401
    nobody = factories.user()
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(nobody)}")
    assert api_client.get(URL).status_code == 403
    assert api_client.get(f"{URL}{frames[0]}/image/").status_code == 403


def test_unknown_inspection_is_a_json_404(viewer_client, db):
    response = viewer_client.get(f"{URL}999999/")
    assert response.status_code == 404
    assert response.json()["detail"]
