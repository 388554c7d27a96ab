# ruff: noqa: F811 - pytest fixtures imported from test_webhooks are requested by name
"""``/api/v1/webhooks/`` and admin: who may, what is refused (400, nothing saved), secret once."""

import pytest

from integrations.models import WebhookDelivery, WebhookSubscription
from tests import factories
from tests.integrations.receiver import verify_signature
from tests.integrations.test_webhooks import (  # noqa: F401 - fixtures
    fast_webhooks,
    frame_event,
    receiver,
    run_webhooks,
)

URL = "/api/v1/webhooks/"


@pytest.fixture
def engineer_api(db, api_client):
    api_client.force_authenticate(factories.engineer())
    return api_client


def create(api, url: str, **fields):
    body = {"name": "MES", "url": url, "events": ["inspection.failed"], **fields}
    return api.post(URL, body, format="json")


def test_an_engineer_creates_a_webhook_and_sees_its_secret_once(
    engineer_api, fast_webhooks, receiver
):
    plant = factories.plant(code="P1")
    line = factories.line(code="L1", plant_obj=plant)
    response = create(engineer_api, receiver.url, line="L1", plant="P1")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 40
    assert (body["status"], body["events"], body["line"]) == (
        "sending",
        ["inspection.failed"],
        "L1",
    )
    shown = engineer_api.get(f"{URL}{body['id']}/").json()
    assert "secret" not in shown
    assert "secret" not in engineer_api.get(URL).json()[0]
    assert WebhookSubscription.objects.get().secret == body["secret"]
    assert line.pk == WebhookSubscription.objects.get().line_id


def test_a_new_secret_signs_the_next_test_event(engineer_api, fast_webhooks, receiver):
    hook = create(engineer_api, receiver.url).json()
    rotated = engineer_api.post(f"{URL}{hook['id']}/rotate-secret/").json()["secret"]
    assert rotated != hook["secret"]

    tested = engineer_api.post(f"{URL}{hook['id']}/test/")

    assert tested.status_code == 200
    assert (tested.json()["state"], tested.json()["last_status"]) == ("delivered", 200)
    got = receiver.requests[0]
    assert got.envelope["type"] == "webhook.test"
    assert verify_signature(rotated, got.body, got.headers["X-LineSight-Signature"])
    assert not verify_signature(hook["secret"], got.body, got.headers["X-LineSight-Signature"])


def test_a_test_event_to_a_dead_receiver_says_why(engineer_api, fast_webhooks, receiver):
    hook = create(engineer_api, receiver.url).json()
    receiver.close()

    tested = engineer_api.post(f"{URL}{hook['id']}/test/").json()

    assert tested["state"] == "failed"
    assert tested["last_error"].startswith("Could not connect")
    assert WebhookSubscription.objects.get().consecutive_failures == 0  # a test does not count


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://example.com/hook", "Only http and https"),
        ("file:///etc/passwd", "Only http and https"),
        ("javascript:alert(1)", "Only http and https"),
        ("http:///nohost", "names no host"),
        ("http://user:pw@example.com/", "no user or password"),
        ("http://127.0.0.1:9/hook", "LINESIGHT_WEBHOOKS_ALLOW_PRIVATE"),
        ("http://localhost/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://169.254.169.254/latest/", "link-local"),
        ("http://[::1]/hook", "LINESIGHT_WEBHOOKS_ALLOW_PRIVATE"),
        ("http://no-such-host.invalid/hook", "does not resolve"),
    ],
)
def test_a_url_that_may_not_receive_webhooks_is_refused_and_nothing_saved(engineer_api, url, says):
    response = create(engineer_api, url)

    assert response.status_code == 400
    assert says in response.json()["detail"]
    assert response.json()["errors"]["url"]
    assert not WebhookSubscription.objects.exists()


def test_the_plant_network_is_allowed_with_the_setting(engineer_api, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    assert create(engineer_api, "http://10.1.2.3:8080/hook").status_code == 201


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"events": []}, "events"),
        ({"events": ["frame.eaten"]}, "events"),
        ({"line": "NOPE"}, "line"),
    ],
)
def test_bad_fields_are_refused(engineer_api, fast_webhooks, receiver, fields, says):
    response = create(engineer_api, receiver.url, **fields)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(says)
    assert not WebhookSubscription.objects.exists()


def test_a_line_outside_the_plant_is_refused(engineer_api, fast_webhooks, receiver):
    factories.plant(code="P1")
    factories.line(code="L2", plant_obj=factories.plant(code="P2"))
    response = create(engineer_api, receiver.url, plant="P1", line="L2")
    assert response.status_code == 400
    assert response.json()["detail"] == "line: Line L2 is not in plant P1."


def test_change_rename_clash_and_delete(engineer_api, fast_webhooks, receiver):
    first = create(engineer_api, receiver.url).json()
    create(engineer_api, receiver.url, name="BI")
    clash = engineer_api.patch(f"{URL}{first['id']}/", {"name": "BI"}, format="json")
    assert clash.status_code == 400 and "exists already" in clash.json()["detail"]
    bad = engineer_api.patch(f"{URL}{first['id']}/", {"url": "gopher://x/"}, format="json")
    assert bad.status_code == 400
    changed = engineer_api.patch(
        f"{URL}{first['id']}/", {"events": ["job.finished"], "active": False}, format="json"
    )
    assert changed.status_code == 200
    assert (changed.json()["events"], changed.json()["status"]) == (["job.finished"], "off")
    assert WebhookSubscription.objects.get(pk=first["id"]).url == receiver.url
    assert engineer_api.delete(f"{URL}{first['id']}/").status_code == 204
    assert list(WebhookSubscription.objects.values_list("name", flat=True)) == ["BI"]


def test_the_delivery_log_lists_newest_first_and_filters_by_state(
    engineer_api, fast_webhooks, receiver
):
    hook = create(engineer_api, receiver.url, events=["inspection.judged"]).json()
    frame_event(1)
    frame_event(2)
    run_webhooks(lambda: len(receiver.accepted()) == 2)

    log = engineer_api.get(f"{URL}{hook['id']}/deliveries/").json()
    assert [d["state"] for d in log["results"]] == ["delivered", "delivered"]
    assert log["results"][0]["id"] > log["results"][1]["id"]
    assert log["results"][0]["last_status"] == 200
    assert engineer_api.get(f"{URL}{hook['id']}/deliveries/?state=failed").json()["results"] == []
    wrong = engineer_api.get(f"{URL}{hook['id']}/deliveries/?state=lost")
    assert wrong.status_code == 400
    assert engineer_api.get(f"{URL}999/deliveries/").status_code == 404


@pytest.mark.parametrize("role", ["inspector", "viewer"])
def test_other_roles_may_not_see_or_manage_webhooks(db, api_client, role):
    api_client.force_authenticate(getattr(factories, role)())
    assert api_client.get(URL).status_code == 403
    refused = api_client.post(URL, {"name": "x", "url": "http://example.com/"}, format="json")
    assert refused.status_code == 403
    assert "quality engineers" in refused.json()["detail"]


def test_anonymous_gets_401(db, api_client):
    assert api_client.get(URL).status_code == 401


def test_admin_adds_a_webhook_shows_its_secret_once_and_refuses_loopback(db, client, settings):
    client.force_login(factories.engineer())
    form = {"name": "MES", "url": "http://127.0.0.1:9/hook", "events": ["inspection.judged"]}
    refused = client.post("/admin/integrations/webhooksubscription/add/", {**form, "active": "on"})
    assert refused.status_code == 200
    assert "LINESIGHT_WEBHOOKS_ALLOW_PRIVATE" in refused.content.decode()
    assert not WebhookSubscription.objects.exists()

    settings.WEBHOOKS_ALLOW_PRIVATE = True
    added = client.post("/admin/integrations/webhooksubscription/add/", {**form, "active": "on"})

    hook = WebhookSubscription.objects.get()
    assert added.status_code == 200
    assert hook.secret in added.content.decode()
    assert "no-cache" in added["Cache-Control"] or "max-age=0" in added["Cache-Control"]
    change = client.get(f"/admin/integrations/webhooksubscription/{hook.pk}/change/")
    assert change.status_code == 200
    assert hook.secret not in change.content.decode()


def test_admin_sends_a_test_event_and_lists_deliveries(db, client, fast_webhooks, receiver):
    client.force_login(factories.engineer())
    hook = WebhookSubscription.objects.create(
        name="MES", url=receiver.url, events=["inspection.judged"]
    )
    response = client.post(
        "/admin/integrations/webhooksubscription/",
        {"action": "send_test_event", "_selected_action": [hook.pk]},
        follow=True,
    )
    assert "MES: test event delivered, 200" in response.content.decode()
    log = client.get("/admin/integrations/webhookdelivery/").content.decode()
    assert "webhook.test" in log
    assert WebhookDelivery.objects.get().state == "delivered"


def test_admin_changes_a_webhook_through_the_form(db, client, fast_webhooks, receiver):
    client.force_login(factories.engineer())
    hook = WebhookSubscription.objects.create(
        name="MES", url=receiver.url, events=["inspection.judged"]
    )
    url = f"/admin/integrations/webhooksubscription/{hook.pk}/change/"
    form = {"name": "MES line 1", "url": receiver.url, "events": ["inspection.failed"]}

    response = client.post(url, form)  # "active" unticked: switched off

    assert response.status_code == 302
    hook.refresh_from_db()
    assert (hook.name, hook.events, hook.active) == ("MES line 1", ["inspection.failed"], False)
    refused = client.post(url, {**form, "url": "ftp://example.com/"})
    assert "Only http and https" in refused.content.decode()
