"""Admin pages made by services (common.admin_forms), as a person meets them.

A small admin site (tests/common/admin_site.py) puts real services behind the
shared helper; the registry and master data pages use the same helper and
have their own tests.
"""

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth.models import Permission

from masterdata.models import DefectType
from tests import factories

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.common.admin_site")]

ADD_URL = "/admin/masterdata/defecttype/add/"
LIST_URL = "/admin/masterdata/defecttype/"


def page_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_service_refusal_shows_on_the_field_it_names_and_keeps_nothing(admin_client):
    factories.defect_type(code="crack", name="Crack")

    response = admin_client.post(ADD_URL, {"code": "crack2", "name": "Crack", "severity": "major"})

    assert response.status_code == 200
    assert response.context["form"].errors["name"] == ["Another defect type already has this name."]
    assert "Please correct the errors below; nothing was saved." in response.content.decode()
    assert list(DefectType.objects.values_list("code", flat=True)) == ["crack"]
    assert not LogEntry.objects.exists()
    assert page_messages(response) == []


def test_refusal_about_a_field_the_form_lacks_shows_on_top_of_the_form(admin_client):
    response = admin_client.post(ADD_URL, {"code": "burn", "name": "Burn", "severity": "critical"})

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "A critical defect type needs a description."
    ]
    assert "A critical defect type needs a description." in response.content.decode()
    assert not DefectType.objects.exists()


def test_invalid_form_does_not_reach_the_service(admin_client):
    response = admin_client.post(ADD_URL, {"code": "burn", "name": "", "severity": "huge"})

    errors = response.context["form"].errors
    assert set(errors) == {"name", "severity"}
    assert not DefectType.objects.exists()


def test_accepted_form_logs_the_addition_and_opens_the_new_row_with_a_message(admin_client):
    response = admin_client.post(ADD_URL, {"code": "dent", "name": "Dent", "severity": "minor"})

    dent = DefectType.objects.get(code="dent")
    assert response.status_code == 302
    assert response["Location"] == f"{LIST_URL}{dent.pk}/change/"
    entry = LogEntry.objects.get()
    assert (entry.action_flag, entry.object_id) == (ADDITION, str(dent.pk))
    assert page_messages(admin_client.get(response["Location"])) == ["Registered dent."]


def test_add_page_is_refused_without_the_add_permission(client):
    clerk = factories.user(username="clerk", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_defecttype"))
    client.force_login(clerk)

    assert client.get(ADD_URL).status_code == 403
    assert client.post(ADD_URL, {"code": "d", "name": "D", "severity": "minor"}).status_code == 403
    assert not DefectType.objects.exists()


def test_add_page_shows_the_form_in_the_admin_frame(admin_client):
    response = admin_client.get(ADD_URL)

    html = response.content.decode()
    assert response.status_code == 200
    assert "<title>Register a defect type" in html
    assert f'href="{LIST_URL}"' in html  # breadcrumbs back to the list
    assert "nothing was saved" not in html


def test_action_asks_first_and_changes_nothing_until_confirmed(admin_client):
    dent = factories.defect_type(code="dent")
    selection = {"action": "retire", "_selected_action": [dent.pk]}

    confirm = admin_client.post(LIST_URL, selection)

    html = confirm.content.decode()
    assert confirm.status_code == 200
    assert "Retire these defect types?" in html
    assert str(dent) in html
    assert 'name="post" value="yes"' in html and f'value="{dent.pk}"' in html
    dent.refresh_from_db()
    assert not dent.archived


def test_confirmed_action_does_what_the_service_accepts_and_says_what_it_refused(admin_client):
    dent = factories.defect_type(code="dent", severity="minor")
    burn = factories.defect_type(code="burn", severity="critical")
    selection = {"action": "retire", "_selected_action": [dent.pk, burn.pk], "post": "yes"}

    response = admin_client.post(LIST_URL, selection, follow=True)

    assert response.redirect_chain[-1][0] == LIST_URL
    assert sorted(page_messages(response)) == [
        "Retired dent.",
        "burn is critical: it stays in the pickers.",
    ]
    assert list(DefectType.objects.filter(archived=True)) == [dent]
