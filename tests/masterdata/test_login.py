"""People log in at /accounts/login/ with the project's login page."""

import re

import pytest
from django.test import Client

from tests import factories

pytestmark = pytest.mark.django_db


def csrf_token(page) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)


@pytest.fixture
def browser_like_client() -> Client:
    return Client(enforce_csrf_checks=True)


def test_engineer_logs_in_through_the_form_and_lands_in_admin(browser_like_client):
    factories.engineer(username="eng", password="a long passphrase")

    page = browser_like_client.get("/accounts/login/?next=/admin/masterdata/station/")
    assert page.status_code == 200
    assert page.templates[0].name == "registration/login.html"
    response = browser_like_client.post(
        "/accounts/login/",
        {
            "csrfmiddlewaretoken": csrf_token(page),
            "username": "eng",
            "password": "a long passphrase",
            "next": "/admin/masterdata/station/",
        },
    )

    assert response.status_code == 302
    assert response["Location"] == "/admin/masterdata/station/"
    assert browser_like_client.get(response["Location"]).status_code == 200


def test_wrong_password_is_refused_on_the_same_page(browser_like_client):
    factories.inspector(username="insp", password="right one")
    page = browser_like_client.get("/accounts/login/")

    response = browser_like_client.post(
        "/accounts/login/",
        {"csrfmiddlewaretoken": csrf_token(page), "username": "insp", "password": "wrong one"},
    )

    assert response.status_code == 200
    assert "Wrong username or password." in response.content.decode()
    assert "_auth_user_id" not in browser_like_client.session


def test_login_form_without_csrf_token_is_rejected(browser_like_client):
    factories.engineer(username="eng", password="pw")

    response = browser_like_client.post("/accounts/login/", {"username": "eng", "password": "pw"})

    assert response.status_code == 403
