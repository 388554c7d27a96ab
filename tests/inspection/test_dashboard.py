"""Dashboard pages as a browser fetches them: access, content, escaping, catch-up JSON."""

import datetime as dt
import json
import re

import pytest
from django.utils import timezone

from inspection import services
from tests import factories
from tests.browser import scene

pytestmark = pytest.mark.django_db

HOSTILE = '"><img src=x onerror=alert(1)><script>alert("x")</script>'
PAGES = ["/dashboard/", "/dashboard/lines/{line}/", "/dashboard/inspections/{frame}/"]


@pytest.fixture
def plant():
    return scene.build(line_code="L-A")


def logged_in(client, user):
    client.force_login(user)
    return client


def urls(plant, frame):
    return [p.format(line=plant.line.code, frame=frame.pk) for p in PAGES]


def test_pages_send_anonymous_visitors_to_log_in(client, plant):
    frame = scene.frame(plant.deployments[0], broadcast=False)
    for url in [*urls(plant, frame), "/dashboard/review/"]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next=")


def test_accounts_without_the_permission_get_403(client, plant):
    frame = scene.frame(plant.deployments[0], broadcast=False)
    logged_in(client, factories.user())  # no role at all
    for url in [*urls(plant, frame), "/dashboard/review/"]:
        assert client.get(url).status_code == 403, url
    logged_in(client, factories.engineer())
    assert client.get("/dashboard/").status_code == 200
    assert client.get("/dashboard/review/").status_code == 403  # engineers do not review


def test_overview_shows_each_station_with_its_figures(client, plant):
    now = timezone.now()
    for minutes, verdict in [(50, "fail"), (3, "pass"), (2, "pass"), (1, "fail")]:
        scene.frame(
            plant.deployments[0],
            verdict=verdict,
            broadcast=False,
            captured_at=now - dt.timedelta(minutes=minutes),
        )
    from inspection.models import Inspection

    # received_at is set on insert; spread it like the capture times for the rates.
    for row in Inspection.objects.all():
        Inspection.objects.filter(pk=row.pk).update(received_at=row.captured_at)
    logged_in(client, factories.inspector())
    response = client.get("/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    row = re.search(rf'<tr data-station="{plant.stations[0].code}">(.*?)</tr>', html, re.S).group(1)
    assert 'data-field="frames_per_minute">0.6<' in row  # 3 frames in the last 5 minutes
    assert "50 %" in row  # 2 defects of 4 in the last hour
    assert 'data-field="pending">2<' in row
    assert f"{plant.deployments[0].version}" in row
    last = Inspection.objects.filter(station=plant.stations[0]).order_by("-captured_at").first()
    assert f'data-inspection-id="{last.pk}"' in row
    quiet = re.search(rf'<tr data-station="{plant.stations[1].code}">(.*?)</tr>', html, re.S).group(
        1
    )
    assert "no frame yet" in quiet

    status = client.get("/dashboard/status.json").json()
    [line] = [item for item in status["lines"] if item["line"] == "L-A"]
    assert line["pending"] == 2
    first = line["stations"][0]
    assert (first["frames_per_minute"], first["defect_rate_hour"]) == (0.6, 0.5)


def test_line_view_has_a_tile_per_station_and_the_last_frames(client, plant):
    frames = [
        scene.frame(plant.deployments[i % 2], verdict=v, broadcast=False)
        for i, v in enumerate(["pass", "fail", "review"])
    ]
    logged_in(client, factories.inspector())
    response = client.get("/dashboard/lines/L-A/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'class="tile verdict-review" data-station="{plant.stations[0].code}"' in html
    assert f'class="tile verdict-fail" data-station="{plant.stations[1].code}"' in html
    initial = json.loads(re.search(r'id="line-initial"[^>]*>(.*?)</script>', html, re.S).group(1))
    assert [f["id"] for f in initial["frames"]] == [f.pk for f in reversed(frames)]
    assert client.get("/dashboard/lines/NOPE/").status_code == 404


def test_review_page_numbers_the_defect_types_and_shows_the_keys(client, plant):
    logged_in(client, factories.inspector(username="alice"))
    html = client.get("/dashboard/review/").content.decode()
    assert "<kbd>1</kbd> it is <strong>crack</strong>" in html
    assert "<kbd>2</kbd> it is <strong>missing_cap</strong>" in html
    for key in ["a", "Enter", "r", "c", "s", "u"]:
        assert f"<kbd>{key}</kbd>" in html
    config = json.loads(re.search(r'id="review-config"[^>]*>(.*?)</script>', html, re.S).group(1))
    assert config["user"] == "alice"
    assert [d["code"] for d in config["defect_types"]] == ["crack", "missing_cap"]


def test_detail_shows_prediction_model_version_and_full_history(client, plant):
    frame = scene.frame(plant.deployments[0], verdict="fail", broadcast=False, serial="SN-1")
    alice = factories.inspector(username="alice")
    first = services.review_decide(inspection=frame, inspector=alice, decision="confirm")
    services.review_decide(
        inspection=frame,
        inspector=alice,
        decision="correct",
        defect_type=plant.defects["crack"],
        comment="hairline",
        supersedes=first,
    )
    logged_in(client, factories.viewer())
    response = client.get(f"/dashboard/inspections/{frame.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    version = plant.deployments[0].version
    assert f"{version.model.name} v{version.number}" in html
    assert f'data-inspection-id="{frame.pk}"' in html
    assert "SN-1" in html
    assert html.count("data-verification-id=") == 2
    assert html.index("Confirm") < html.index("Correct the defect type") < html.index("hairline")
    assert client.get("/dashboard/inspections/999999/").status_code == 404


def test_typed_text_is_escaped_in_every_page(client, plant):
    plant.defects["crack"].name = HOSTILE
    plant.defects["crack"].save()
    product = factories.product(name=HOSTILE, lines=[plant.line])
    frame = scene.frame(
        plant.deployments[0],
        verdict="fail",
        broadcast=False,
        serial=HOSTILE,
        lot=HOSTILE,
        product_obj=product,
    )
    from inspection.models import Inspection

    Inspection.objects.filter(pk=frame.pk).update(
        label=HOSTILE, top_k=[{"label": HOSTILE, "confidence": 0.5}]
    )
    services.review_decide(
        inspection=frame, inspector=factories.inspector(), decision="reject", comment=HOSTILE
    )
    logged_in(client, factories.inspector())
    for url in [*urls(plant, frame), "/dashboard/review/"]:
        html = client.get(url).content.decode()
        assert "<script>alert" not in html, url
        assert "<img src=x" not in html, url
    detail = client.get(f"/dashboard/inspections/{frame.pk}/").content.decode()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in detail
    line = client.get("/dashboard/lines/L-A/").content.decode()
    # Inside the JSON island a closing tag cannot end the script element early.
    assert "\\u003Cscript\\u003E" in line
