"""The whole API's OpenAPI schema, as served at /api/schema/: clean, valid, and complete."""

from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from tests import factories


def test_schema_of_every_endpoint_generates_without_warnings_and_validates():
    GENERATOR_STATS.reset()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    warnings, errors = dict(GENERATOR_STATS._warn_cache), dict(GENERATOR_STATS._error_cache)
    GENERATOR_STATS.reset()
    assert not warnings, warnings
    assert not errors, errors
    validate_schema(schema)
    paths = set(schema["paths"])
    for expected in (
        "/api/v1/inspections/",
        "/api/v1/inspections/{id}/",
        "/api/v1/inspections/{id}/image/",
        "/api/v1/stations/{code}/model/",
        "/api/v1/inspections/{id}/verifications/",
        "/api/v1/models/{name}/versions/",
        "/api/v1/deployments/",
        "/api/v1/reports/summary/",
    ):
        assert expected in paths, sorted(paths)


def test_the_frame_response_documents_every_field_a_device_gets(db):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    response = schema["paths"]["/api/v1/inspections/"]["post"]["responses"]["201"]
    ref = response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    documented = set(schema["components"]["schemas"][ref]["properties"])
    for field in (
        "id",
        "station",
        "product",
        "verdict",
        "label",
        "defect_type",
        "confidence",
        "top_k",
        "model_version",
        "latency_ms",
        "source",
        "review_status",
        "image_url",
        "captured_at",
        "received_at",
    ):
        assert field in documented


def test_schema_and_docs_are_served(db, client):
    client.force_login(factories.engineer())
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200
