"""A person's own API token page, and who may read the API's schema and docs."""

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests import factories


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_status(key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/v1/models/").status_code


def shown_key(page) -> str:
    html = page.content.decode()
    start = html.index("data-key>") + len("data-key>")
    return html[start : html.index("</code>", start)]


@pytest.mark.django_db
def test_an_engineer_makes_a_token_sees_it_once_and_it_works():
    engineer = factories.engineer()
    client = logged_in(engineer)

    made = client.post("/accounts/token/", {"action": "create"})
    key = shown_key(made)

    assert made.status_code == 200
    assert "no-store" in made["Cache-Control"]
    assert api_status(key) == 200
    later = client.get("/accounts/token/").content.decode()
    assert "You have an API token" in later
    assert key not in later


@pytest.mark.django_db
def test_rotating_replaces_the_key_and_revoking_stops_it():
    client = logged_in(factories.engineer())
    first = shown_key(client.post("/accounts/token/", {"action": "create"}))

    second = shown_key(client.post("/accounts/token/", {"action": "rotate"}))

    assert second != first
    assert api_status(first) == 401
    assert api_status(second) == 200

    revoked = client.post("/accounts/token/", {"action": "revoke"}, follow=True)
    assert "Your API token is revoked" in revoked.content.decode()
    assert api_status(second) == 401
    assert not Token.objects.exists()


@pytest.mark.django_db
def test_the_menu_links_the_token_page_for_the_roles_that_use_the_api():
    for user, linked in [
        (factories.engineer(), True),
        (factories.viewer(), True),
        (factories.inspector(), False),
    ]:
        html = logged_in(user).get("/", follow=True).content.decode()
        assert ('href="/accounts/token/"' in html) is linked, user.groups.first()


@pytest.mark.django_db
def test_an_inspector_is_refused_the_token_page_and_anonymous_is_sent_to_log_in():
    refused = logged_in(factories.inspector()).post("/accounts/token/", {"action": "create"})
    assert refused.status_code == 403
    assert not Token.objects.exists()

    anonymous = Client().get("/accounts/token/")
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_send_anonymous_people_to_log_in_and_serve_their_assets_locally(page):
    anonymous = Client().get(page)
    assert anonymous.status_code == 302
    assert anonymous["Location"] == f"/accounts/login/?next={page}"

    docs = logged_in(factories.viewer()).get(page)
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/" in html
    assert "https://" not in html


@pytest.mark.django_db
def test_the_schema_needs_a_login_or_a_token():
    assert APIClient().get("/api/schema/").status_code == 401

    key = factories.api_token(factories.viewer())
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/schema/", {"format": "json"}).status_code == 200
    assert logged_in(factories.inspector()).get("/api/schema/").status_code == 200
