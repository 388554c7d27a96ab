"""Station device tokens: issued in admin or by a command, shown once, stored only as a hash."""

import io
import re

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from masterdata.authentication import StationTokenAuthentication
from masterdata.models import Station
from masterdata.tokens import hash_station_token
from tests import factories

pytestmark = pytest.mark.django_db

TOKEN_IN_PAGE = re.compile(r'class="station-token"[^>]*value="(lss_[^"]+)"')


def authenticate(token: str) -> Station:
    """What the device API does with ``Authorization: Token <token>``."""
    request = Request(APIRequestFactory().post("/", HTTP_AUTHORIZATION=f"Token {token}"))
    user, station = StationTokenAuthentication().authenticate(request)
    assert user.station == station
    return station


def assert_refused(token: str) -> None:
    with pytest.raises(AuthenticationFailed, match="Unknown or revoked station token"):
        authenticate(token)


def tokens_shown(response) -> list[str]:
    return TOKEN_IN_PAGE.findall(response.content.decode())


@pytest.fixture
def engineer_client(client):
    client.force_login(factories.engineer())
    return client


# --- Creating a station in admin ---------------------------------------------


def test_new_station_shows_its_token_once_and_the_token_authenticates(engineer_client):
    line = factories.line(code="L1")

    response = engineer_client.post(
        reverse("admin:masterdata_station_add"),
        {"code": "L1-CAP", "line": line.pk, "description": "Cap camera", "active": "on"},
    )

    assert response.status_code == 200
    assert "shown only this once" in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    [token] = tokens_shown(response)
    station = Station.objects.get(code="L1-CAP")
    assert authenticate(token) == station
    assert station.token_hash == hash_station_token(token)
    assert token not in str(Station.objects.filter(pk=station.pk).values().get())

    change_page = engineer_client.get(reverse("admin:masterdata_station_change", args=[station.pk]))
    page = change_page.content.decode()
    assert token not in page and station.token_hash not in page
    assert station.token_prefix in page
    assert token not in str(list(LogEntry.objects.values()))


def test_station_form_errors_issue_no_token(engineer_client):
    response = engineer_client.post(
        reverse("admin:masterdata_station_add"), {"code": "bad code!", "line": "", "active": "on"}
    )

    assert response.status_code == 200
    assert tokens_shown(response) == []
    assert not Station.objects.exists()


# --- Rotate and revoke from the change page ----------------------------------


def test_rotating_from_the_change_page_shows_a_new_token_and_the_old_one_stops_working(
    engineer_client,
):
    station, old_token = factories.station_with_token(code="S1")
    url = reverse("admin:masterdata_station_token", args=[station.pk, "rotate"])

    confirm = engineer_client.get(url)
    assert confirm.status_code == 200 and "stops working" in confirm.content.decode()
    assert authenticate(old_token) == station  # asking is not doing

    response = engineer_client.post(url)

    [new_token] = tokens_shown(response)
    assert new_token != old_token
    assert authenticate(new_token) == station
    assert_refused(old_token)
    change_page = reverse("admin:masterdata_station_change", args=[station.pk])
    assert new_token not in engineer_client.get(change_page).content.decode()


def test_revoking_from_the_change_page_refuses_the_device(engineer_client):
    station, token = factories.station_with_token(code="S1")
    url = reverse("admin:masterdata_station_token", args=[station.pk, "revoke"])

    response = engineer_client.post(url)

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:masterdata_station_change", args=[station.pk])
    assert_refused(token)
    station.refresh_from_db()
    assert station.token_hash == "" and station.token_prefix == ""
    page = engineer_client.get(response["Location"]).content.decode()
    assert "none: the device is refused" in page


def test_unknown_token_operation_is_not_found(engineer_client):
    station = factories.station()

    url = reverse("admin:masterdata_station_token", args=[station.pk, "reveal"])

    assert engineer_client.post(url).status_code == 404


# --- Rotate and revoke as list actions ---------------------------------------


def test_rotate_action_asks_first_then_shows_each_new_token_once(engineer_client):
    first, first_old = factories.station_with_token(code="S1")
    second = factories.station(code="S2")  # never had a token
    untouched, untouched_token = factories.station_with_token(code="S3")
    changelist = reverse("admin:masterdata_station_changelist")
    selection = {"action": "rotate_tokens", "_selected_action": [first.pk, second.pk]}

    confirm = engineer_client.post(changelist, selection)
    assert confirm.status_code == 200 and tokens_shown(confirm) == []
    assert authenticate(first_old) == first

    response = engineer_client.post(changelist, {**selection, "post": "yes"})

    tokens = tokens_shown(response)
    assert [authenticate(token) for token in tokens] == [first, second]
    assert_refused(first_old)
    assert authenticate(untouched_token) == untouched


def test_revoke_action_refuses_the_selected_devices_only(engineer_client):
    first, first_token = factories.station_with_token(code="S1")
    other, other_token = factories.station_with_token(code="S2")
    changelist = reverse("admin:masterdata_station_changelist")

    response = engineer_client.post(
        changelist,
        {"action": "revoke_tokens", "_selected_action": [first.pk], "post": "yes"},
        follow=True,
    )

    assert "Revoked the device token of S1" in response.content.decode()
    assert_refused(first_token)
    assert authenticate(other_token) == other


def test_station_list_shows_token_prefix_never_the_token(engineer_client):
    station, token = factories.station_with_token(code="S1")
    factories.station(code="S2")

    page = engineer_client.get(reverse("admin:masterdata_station_changelist")).content.decode()

    assert station.token_prefix in page and token not in page
    assert "none: the device is refused" in page


# --- python manage.py station_token ------------------------------------------


def run_command(*args: str) -> tuple[str, str]:
    """Run manage.py station_token in-process; returns (stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    call_command("station_token", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_command_prints_only_a_new_working_token():
    station, old_token = factories.station_with_token(code="L1-CAP")

    out, err = run_command("L1-CAP")

    token = out.strip()
    assert out == f"{token}\n" and err == ""
    assert authenticate(token) == station
    assert_refused(old_token)


def test_command_revoke_removes_the_token():
    station, token = factories.station_with_token(code="L1-CAP")

    out, err = run_command("L1-CAP", "--revoke")

    assert out == "" and "Revoked the device token of station L1-CAP" in err
    assert_refused(token)
    station.refresh_from_db()
    assert not station.has_token


def test_command_with_unknown_station_fails_clearly():
    factories.station(code="L1-CAP")

    for args in (["L1-CA"], ["L1-CA", "--revoke"]):
        with pytest.raises(CommandError) as refused:
            run_command(*args)
        # manage.py prints a CommandError on stderr and exits with its returncode
        assert refused.value.returncode == 1
        assert str(refused.value) == "No station has the code 'L1-CA'. Did you mean L1-CAP?"


def test_command_warns_on_stderr_when_the_station_is_inactive():
    factories.station(code="L1-CAP", active=False)

    out, err = run_command("L1-CAP")

    assert out.startswith("lss_") and "inactive" in err
