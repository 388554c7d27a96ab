"""Reads from the model registry."""

from functools import cache

from django.db import connection
from django.db.models import Count, Max, Prefetch, Q, QuerySet

from masterdata.models import Product, Station
from models_registry.models import (
    Deployment,
    DeploymentHistory,
    LabelMapping,
    MLModel,
    ModelVersion,
)


def deployment_queryset() -> QuerySet[Deployment]:
    """Deployments with everything the verdict needs, in at most four queries."""
    return Deployment.objects.select_related(
        "station__line__plant", "product", "version__model"
    ).prefetch_related(
        Prefetch(
            "version__mappings",
            queryset=LabelMapping.objects.select_related("defect_type").order_by("index"),
        ),
        "defect_thresholds__defect_type",
        "always_review",
    )


def active_deployment_row(
    *, station_id: int, product_id: int | None, fields: tuple[str, ...] = ("id",)
) -> tuple | None:
    """``fields`` of the deployment serving a frame of ``product_id`` at ``station_id``.

    The one rule for which deployment serves: a deployment for the product
    wins over the station-wide one. One indexed query, read from the
    database every time, which is what makes an activation reach every
    worker process on the next frame.
    """
    with connection.cursor() as cursor:
        cursor.execute(_active_deployment_sql(fields), (station_id, product_id))
        rows = cursor.fetchall()
    rows.sort(key=lambda row: row[0] is None)  # product-specific first
    return tuple(rows[0][1:]) if rows else None


@cache
def _active_deployment_sql(fields: tuple[str, ...]) -> str:
    """The ORM's SQL for ``active_deployment_row``, compiled once per process.

    Building the query costs ten times its round trip to the database, on
    every frame; the SQL never changes, only the two parameters.
    """
    query = (
        Deployment.objects.filter(station_id=0, is_active=True)
        .filter(Q(product__isnull=True) | Q(product_id=0))
        .values_list("product_id", *fields)
    )
    sql, params = query.query.sql_with_params()
    if params != (0, 0):  # the station and the product, in that order
        raise RuntimeError(f"Unexpected parameters {params} in the active deployment query.")
    return sql


def active_deployment(*, station: Station, product: Product | None = None) -> Deployment | None:
    """The deployment serving a frame of ``product`` at ``station``, ready for the verdict."""
    row = active_deployment_row(station_id=station.pk, product_id=product.pk if product else None)
    return deployment_queryset().get(pk=row[0]) if row else None


def active_deployments() -> QuerySet[Deployment]:
    return deployment_queryset().filter(is_active=True)


def deployed_version_ids() -> set[int]:
    return set(
        Deployment.objects.filter(is_active=True).values_list("version_id", flat=True).distinct()
    )


def rollback_target(*, current: Deployment) -> Deployment | None:
    """The deployment that was active before ``current`` was first activated.

    Rolling back repeatedly walks back through activations (v3 → v2 → v1),
    not back and forth between the last two.
    """
    entry = (
        DeploymentHistory.objects.filter(to_deployment=current, action="activate")
        .exclude(from_deployment=None)
        .select_related("from_deployment")
        .order_by("-at", "-id")
        .first()
    )
    return entry.from_deployment if entry else None


def version_by_number(*, model_name: str, number: int) -> ModelVersion:
    return version_queryset().get(model__name=model_name, number=number)


def model_list() -> QuerySet[MLModel]:
    """Models with how many versions each has and the newest number."""
    return MLModel.objects.annotate(
        version_count=Count("versions"), latest_version=Max("versions__number")
    ).order_by("name")


def version_queryset() -> QuerySet[ModelVersion]:
    """Versions with their model, uploader and label mappings (defect types joined)."""
    return ModelVersion.objects.select_related("model", "uploaded_by").prefetch_related(
        Prefetch(
            "mappings",
            queryset=LabelMapping.objects.select_related("defect_type").order_by("index"),
        )
    )


def version_list(*, model: MLModel) -> QuerySet[ModelVersion]:
    return version_queryset().filter(model=model).order_by("-number")


def slots_served_by(*, version: ModelVersion) -> list[str]:
    """Where the version is active now, as 'STATION' or 'STATION/SKU'."""
    rows = Deployment.objects.filter(version=version, is_active=True).values_list(
        "station__code", "product__sku"
    )
    return sorted(f"{code}/{sku}" if sku else code for code, sku in rows)


def deployment_list(
    *, station: Station | None = None, product: Product | None = None, active: bool | None = None
) -> QuerySet[Deployment]:
    """Deployments newest first, optionally of one station (and product) or by state."""
    deployments = deployment_queryset().select_related("activated_by")
    if station is not None:
        deployments = deployments.filter(station=station)
    if product is not None:
        deployments = deployments.filter(product=product)
    if active is not None:
        deployments = deployments.filter(is_active=active)
    return deployments.order_by("-activated_at", "-id")


def deployment_history(
    *, station: Station | None = None, product: Product | None = None
) -> QuerySet[DeploymentHistory]:
    """Who switched what and when, newest first, with both ends' versions joined."""
    entries = DeploymentHistory.objects.select_related(
        "station",
        "product",
        "by",
        "from_deployment__version__model",
        "to_deployment__version__model",
    )
    if station is not None:
        entries = entries.filter(station=station)
    if product is not None:
        entries = entries.filter(product=product)
    return entries.order_by("-at", "-id")
