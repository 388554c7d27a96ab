"""Reports are for Viewers and Quality engineers: login, permission, 403 otherwise."""

import pytest

from tests import factories
from tests.reports.conftest import RANGE

PAGES = ["/reports/", "/reports/export.xlsx", "/reports/export.csv"]
API = [
    "/api/v1/reports/summary/",
    "/api/v1/reports/volume/",
    "/api/v1/reports/pareto/",
    "/api/v1/reports/model-versions/",
    "/api/v1/reports/agreement/",
    "/api/v1/reports/inspectors/",
]


@pytest.mark.django_db
def test_anonymous_visitor_is_sent_to_login_and_api_refuses(client):
    for url in PAGES:
        response = client.get(url, RANGE)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")
    for url in API:
        assert client.get(url, RANGE).status_code in {401, 403}


@pytest.mark.django_db
def test_inspector_without_the_permission_gets_403(client):
    client.force_login(factories.inspector())
    for url in PAGES + API:
        assert client.get(url, RANGE).status_code == 403, url


@pytest.mark.django_db
@pytest.mark.parametrize("role", [factories.viewer, factories.engineer])
def test_viewers_and_engineers_read_reports(client, role):
    client.force_login(role())
    for url in PAGES + API:
        assert client.get(url, RANGE).status_code == 200, url


@pytest.mark.django_db
def test_user_api_token_reads_reports(api_client):
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(factories.viewer())}")
    response = api_client.get("/api/v1/reports/summary/", RANGE)
    assert response.status_code == 200
    assert response.json()["totals"]["frames"] == 0


@pytest.mark.django_db
def test_station_token_cannot_read_reports(api_client):
    _, token = factories.station_with_token()
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = api_client.get("/api/v1/reports/summary/", RANGE)
    assert response.status_code == 403
    assert "reports.view_reports" in response.json()["detail"]


@pytest.mark.django_db
def test_schema_documents_the_report_endpoints(client):
    client.force_login(factories.engineer())
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    summary = schema["paths"]["/api/v1/reports/summary/"]["get"]
    assert {p["name"] for p in summary["parameters"]} >= {"from", "to", "line", "shift"}
    assert "/api/v1/reports/model-versions/" in schema["paths"]
    volume = schema["paths"]["/api/v1/reports/volume/"]["get"]
    by = next(p for p in volume["parameters"] if p["name"] == "by")
    assert sorted(by["schema"]["enum"]) == ["day", "line", "product", "shift", "station"]
