"""The outbox holds one message per recorded fact, written with the row or not at all."""

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from common.jobs import (
    job_cancel,
    job_enqueue,
    job_run,
    periodic_jobs_prune,
    register_job_kind,
)
from common.models import Job, OutboxMessage
from common.outbox import SCHEMA
from inspection.models import Inspection
from models_registry.services import deployment_deactivate
from tests import factories
from tests.images import GREEN, RED, frame_bytes

pytestmark = pytest.mark.django_db

URL = "/api/v1/inspections/"


def post_frame(client, token, image, **headers):
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    upload = SimpleUploadedFile("frame.jpg", image, "image/jpeg")
    return client.post(
        URL, {"station": "ST1", "image": upload, "serial": "SN-1", "lot": "LOT-7"}, **headers
    )


def messages(event_type: str) -> list[dict]:
    return [m.payload for m in OutboxMessage.objects.filter(type=event_type).order_by("id")]


def test_a_judged_frame_adds_one_message_with_its_station_and_verdict(api_client, line_setup):
    response = post_frame(api_client, line_setup["token"], frame_bytes(GREEN))
    assert response.status_code == 201, response.content
    [message] = messages("inspection.judged")
    assert message["schema"] == SCHEMA
    assert (message["plant"], message["line"], message["station"]) == ("PL1", "L1", "ST1")
    data = message["data"]
    assert data["id"] == response.json()["id"]
    assert data["verdict"] == "fail" and data["defect_type"] == "missing_cap"
    assert (data["serial"], data["lot"]) == ("SN-1", "LOT-7")
    assert data["model_version"] == {"model": "bottle", "version": 1}
    row = OutboxMessage.objects.get(type="inspection.judged")
    assert row.scope == "PL1/L1/ST1" and str(row.message_id) == message["id"]


def test_without_a_broker_nothing_waits_for_mqtt(api_client, line_setup, settings):
    settings.MQTT_HOST = ""
    post_frame(api_client, line_setup["token"], frame_bytes(RED))
    settings.MQTT_HOST = "broker.plant.local"
    post_frame(api_client, line_setup["token"], frame_bytes(RED))
    sent = list(OutboxMessage.objects.order_by("id").values_list("mqtt_sent_at", flat=True))
    assert sent[-2] is not None and sent[-1] is None
    assert OutboxMessage.objects.filter(webhooks_sent_at__isnull=False).count() == 0


def test_a_refused_frame_and_a_retried_frame_add_nothing(api_client, line_setup):
    before = OutboxMessage.objects.count()
    assert post_frame(api_client, line_setup["token"], b"not an image").status_code == 400
    assert OutboxMessage.objects.count() == before
    image = frame_bytes(RED)
    first = post_frame(api_client, line_setup["token"], image, HTTP_IDEMPOTENCY_KEY="k-1")
    again = post_frame(api_client, line_setup["token"], image, HTTP_IDEMPOTENCY_KEY="k-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert len(messages("inspection.judged")) == 1


def test_a_decision_adds_a_message_with_the_frames_final_state(api_client, line_setup):
    frame = post_frame(api_client, line_setup["token"], frame_bytes(GREEN)).json()
    inspector = factories.inspector(username="ines")
    api_client.credentials()
    api_client.force_authenticate(inspector)
    response = api_client.post(
        f"/api/v1/inspections/{frame['id']}/verifications/", {"decision": "reject"}, format="json"
    )
    assert response.status_code == 201, response.content
    [message] = messages("inspection.verified")
    assert message["station"] == "ST1"
    assert message["data"]["verification"]["decision"] == "reject"
    assert message["data"]["verification"]["inspector"] == "ines"
    assert message["data"]["inspection"]["review_status"] == "verified"
    assert Inspection.objects.get(pk=frame["id"]).review_status == "verified"


def test_deployments_say_what_the_station_serves_now(line_setup):
    [activated] = messages("deployment.changed")  # the fixture's deployment
    assert activated["station"] == "ST1"
    assert activated["data"]["action"] == "activate"
    assert activated["data"]["model_version"] == {"model": "bottle", "version": 1}
    deployment_deactivate(deployment=line_setup["deployment"])
    stopped = messages("deployment.changed")[-1]
    assert stopped["data"] == {
        "action": "deactivate",
        "product": None,
        "deployment": None,
        "model_version": None,
    }


def test_finished_and_cancelled_jobs_add_a_message_each():
    register_job_kind("test_echo", queue="imports", run="tests.common.job_kinds.run_echo")
    done = job_enqueue(kind="test_echo", payload={"n": 1})
    failed = job_enqueue(kind="test_echo", payload={"fail": "bad input"})
    cancelled = job_enqueue(kind="test_echo", payload={})
    job_run(str(done.pk))
    job_run(str(failed.pk))
    assert job_cancel(job=cancelled)
    assert not job_cancel(job=cancelled)  # cancelling again records nothing new
    finished = {m["data"]["job"]: m for m in messages("job.finished")}
    assert {job: m["data"]["state"] for job, m in finished.items()} == {
        str(done.pk): "done",
        str(failed.pk): "failed",
        str(cancelled.pk): "cancelled",
    }
    assert finished[str(failed.pk)]["data"]["error"] == "bad input"
    assert finished[str(done.pk)]["station"] is None


def test_periodic_housekeeping_is_not_news_and_its_old_runs_are_pruned(settings):
    register_job_kind("test_echo", queue="imports", run="tests.common.job_kinds.run_echo")
    settings.PERIODIC_JOBS = {**settings.PERIODIC_JOBS, "test_echo": 30}
    old = job_enqueue(kind="test_echo", payload={})
    recent = job_enqueue(kind="test_echo", payload={})
    job_run(str(old.pk))
    job_run(str(recent.pk))
    assert messages("job.finished") == []
    Job.objects.filter(pk=old.pk).update(finished=timezone.now() - dt.timedelta(days=8))

    assert periodic_jobs_prune(keep_days=7) == 1
    assert list(Job.objects.values_list("pk", flat=True)) == [recent.pk]
