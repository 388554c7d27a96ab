"""The OpenAPI schema of the registry API: generated cleanly, and true to the responses."""

import pytest
from django.urls import include, path
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from tests import factories

REGISTRY_PATTERNS = [path("api/v1/", include("models_registry.api.urls"))]


@pytest.fixture
def registry_schema() -> dict:
    GENERATOR_STATS.reset()
    schema = SchemaGenerator(patterns=REGISTRY_PATTERNS).get_schema(request=None, public=True)
    warnings = dict(GENERATOR_STATS._warn_cache)
    errors = dict(GENERATOR_STATS._error_cache)
    GENERATOR_STATS.reset()
    assert not warnings, warnings
    assert not errors, errors
    return schema


def test_registry_schema_generates_without_warnings_and_validates(registry_schema):
    validate_schema(registry_schema)

    assert sorted(registry_schema["paths"]) == [
        "/api/v1/datasets/",
        "/api/v1/datasets/{name}/",
        "/api/v1/datasets/{name}/images/",
        "/api/v1/datasets/{name}/snapshots/",
        "/api/v1/datasets/{name}/snapshots/{number}/",
        "/api/v1/datasets/{name}/snapshots/{number}/export/",
        "/api/v1/datasets/{name}/snapshots/{number}/export/{job_id}/",
        "/api/v1/datasets/{name}/splits/",
        "/api/v1/deployments/",
        "/api/v1/deployments/rollback/",
        "/api/v1/deployments/{id}/",
        "/api/v1/evaluations/",
        "/api/v1/evaluations/{id}/",
        "/api/v1/evaluations/{id}/enable-fast-path/",
        "/api/v1/evaluations/{id}/results/",
        "/api/v1/models/",
        "/api/v1/models/{name}/",
        "/api/v1/models/{name}/versions/",
        "/api/v1/models/{name}/versions/{number}/",
        "/api/v1/models/{name}/versions/{number}/mapping/",
        "/api/v1/trainings/",
        "/api/v1/trainings/{id}/",
        "/api/v1/trainings/{id}/cancel/",
        "/api/v1/trainings/{id}/compare/",
    ]


def operations(schema):
    for methods in schema["paths"].values():
        for method, operation in methods.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield method, operation


def test_every_operation_documents_auth_errors_and_user_tokens_only(registry_schema):
    for _, operation in operations(registry_schema):
        assert operation["security"] == [{"tokenAuth": []}, {"cookieAuth": []}]
        for status in ("401", "403"):
            content = operation["responses"][status]["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/Error"}


def test_upload_is_described_as_multipart_with_a_binary_artifact(registry_schema):
    upload = registry_schema["paths"]["/api/v1/models/{name}/versions/"]["post"]
    body = upload["requestBody"]["content"]
    assert list(body) == ["multipart/form-data"]
    component = body["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    fields = registry_schema["components"]["schemas"][component]
    assert fields["properties"]["artifact"] == {
        **fields["properties"]["artifact"],
        "type": "string",
        "format": "binary",
    }
    assert fields["required"] == ["artifact"]
    assert "Location" in upload["responses"]["201"]["headers"]
    assert set(upload["responses"]) == {"201", "400", "401", "403", "404", "415", "503"}


def test_deployment_request_names_every_field_the_view_reads(registry_schema):
    schemas = registry_schema["components"]["schemas"]
    request = schemas["DeploymentCreateRequest"]
    assert set(request["properties"]) == {
        "station",
        "product",
        "model",
        "version",
        "confidence_threshold",
        "defect_thresholds",
        "always_review",
        "pass_review_rate",
        "edge_recheck_rate",
        "low_margin_review",
        "low_margin_daily_cap",
    }
    assert set(request["required"]) == {"station", "model", "version"}
    threshold = request["properties"]["confidence_threshold"]
    assert (threshold["minimum"], threshold["maximum"]) == (0, 1)


@pytest.mark.django_db
def test_response_bodies_have_exactly_the_documented_fields(registry_schema):
    """Compare real responses with the schema components they claim to be."""
    schemas = registry_schema["components"]["schemas"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(factories.engineer())}")
    version = factories.version_row(model_name="bottle")
    factories.deployment(station_obj=factories.station(code="CAP-1"), version=version)
    factories.deployment(station_obj=factories.station(code="CAP-2"), version=version)

    def documented(name: str) -> set[str]:
        return set(schemas[name]["properties"])

    model = client.get("/api/v1/models/bottle/").json()
    detail = client.get("/api/v1/models/bottle/versions/1/").json()
    overview = client.get("/api/v1/deployments/?station=CAP-1").json()
    rollback = client.post("/api/v1/deployments/rollback/", {"station": "CAP-1"}, format="json")

    assert set(model) == documented("Model")
    assert set(detail) == documented("Version")
    assert set(detail["signature"]) == documented("Signature")
    assert set(detail["preprocessing"]) == documented("Preprocessing")
    assert set(detail["serving"]) == documented("Serving")
    assert set(detail["mappings"][0]) == documented("LabelMapping")
    assert set(overview) == documented("DeploymentOverview")
    assert set(overview["active"][0]) == documented("Deployment")
    assert set(overview["history"][0]) == documented("DeploymentHistory")
    assert set(rollback.json()) == documented("Error")  # only one deployment: refused
    assert set(rollback.json()["errors"]) <= {"station", "product", "non_field_errors"}


@pytest.mark.django_db
def test_project_schema_endpoint_includes_the_registry():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(factories.engineer())}")
    response = client.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/models/{name}/versions/" in paths
    assert "/api/v1/deployments/rollback/" in paths
