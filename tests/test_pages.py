"""Where each role lands, and the pages a person meets when refused, lost or on a fault."""

import io
import logging

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import path

import config.urls
from common.log_filters import ForbiddenInOneLine
from tests import factories


def _boom(request):
    raise RuntimeError("a fault in a view")


# A urlconf with config's routes, its error handlers and two views that fail.
urlpatterns = [
    path("boom/", _boom),
    path("api/v1/boom/", _boom),
    *config.urls.urlpatterns,
]
handler403 = config.urls.handler403
handler404 = config.urls.handler404
handler500 = config.urls.handler500


def logged_in(user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("make_user", "landing"),
    [
        (factories.engineer, "/dashboard/"),
        (factories.inspector, "/dashboard/"),
        (factories.viewer, "/reports/"),
    ],
)
def test_each_role_lands_on_a_page_it_may_open(make_user, landing):
    user = make_user(password="pw")
    client = Client()

    after_login = client.post("/accounts/login/", {"username": user.username, "password": "pw"})
    assert after_login.status_code == 302
    first = client.get(after_login["Location"], follow=True)

    assert first.redirect_chain[-1][0] == landing
    assert first.status_code == 200
    # The brand link and the site's root lead to the same page.
    assert client.get("/")["Location"] == landing


@pytest.mark.django_db
def test_a_person_without_a_role_is_told_what_to_do_instead_of_a_403():
    client = logged_in(factories.user(username="newcomer"))

    page = client.get("/", follow=True)

    assert page.status_code == 200
    assert "Your account has no role yet" in page.content.decode()


@pytest.mark.django_db
def test_the_root_sends_an_anonymous_visitor_to_log_in():
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_a_refused_page_is_styled_with_the_menu_and_says_what_to_do():
    client = logged_in(factories.inspector(username="ines"))

    page = client.get("/reports/")

    assert page.status_code == 403
    html = page.content.decode()
    assert "This page is not open to your role" in html
    assert "ask an administrator" in html
    assert 'href="/dashboard/review/"' in html  # the inspector's menu
    assert "linesight.css" in html


@pytest.mark.django_db
def test_a_missing_page_is_styled_and_api_paths_answer_json(settings):
    client = logged_in(factories.viewer())

    page = client.get("/no/such/page/")
    api = client.get("/api/v1/no-such-endpoint/")

    assert page.status_code == 404
    assert "Nothing here" in page.content.decode()
    assert 'href="/reports/"' in page.content.decode()
    assert api.status_code == 404
    assert api.json() == {"detail": "Nothing at /api/v1/no-such-endpoint/."}


@pytest.mark.django_db
def test_a_server_error_is_styled_and_api_paths_answer_json(settings):
    settings.ROOT_URLCONF = "tests.test_pages"
    client = logged_in(factories.viewer())

    page = client.get("/boom/")
    api = client.get("/api/v1/boom/")

    assert page.status_code == 500
    assert "Something went wrong on the server" in page.content.decode()
    assert 'href="/reports/"' in page.content.decode()
    assert api.status_code == 500
    assert api.json()["detail"].startswith("The server failed")


@pytest.mark.django_db
def test_a_refusal_under_api_answers_json():
    from django.core.exceptions import PermissionDenied
    from django.test import RequestFactory

    from config.views import forbidden

    request = RequestFactory().get("/api/v1/anything/")
    response = forbidden(request, PermissionDenied())

    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"


@pytest.fixture
def console():
    """What the console handler of settings.LOGGING prints during the test."""
    handler = next(
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, ForbiddenInOneLine) for f in h.filters)
    )
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


@pytest.mark.django_db
def test_a_refused_page_is_logged_in_one_line(console):
    client = logged_in(factories.inspector())

    assert client.get("/reports/").status_code == 403

    lines = console.getvalue().splitlines()
    assert len(lines) == 1, console.getvalue()
    assert "Forbidden (Permission denied): /reports/" in lines[0]


@pytest.mark.django_db
def test_a_server_error_keeps_its_traceback_in_the_log(console, settings):
    settings.ROOT_URLCONF = "tests.test_pages"

    assert logged_in(factories.viewer()).get("/boom/").status_code == 500

    assert "Traceback" in console.getvalue()
    assert "a fault in a view" in console.getvalue()


@pytest.mark.django_db
def test_every_page_names_an_icon_that_is_served():
    page = logged_in(factories.viewer()).get("/reports/")
    assert 'rel="icon" href="/static/favicon.svg"' in page.content.decode()

    # Pages that name no icon (admin, API docs) make the browser ask for /favicon.ico.
    answer = Client().get("/favicon.ico")
    assert answer.status_code == 301
    assert answer["Location"] == "/static/favicon.svg"
    assert finders.find("favicon.svg") is not None
