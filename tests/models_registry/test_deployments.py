"""Deployments through the services: activation, rollback, history, and what workers see."""

import datetime as dt
import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from models_registry import selectors, services
from models_registry.models import DefectThreshold, Deployment, DeploymentHistory
from tests import factories
from tests.conftest import committed_db


@pytest.fixture
def station(db):
    return factories.station(code="CAP-1")


def served_number(station, product=None) -> int | None:
    active = selectors.active_deployment(station=station, product=product)
    return active.version.number if active else None


@pytest.mark.django_db
def test_history_records_who_switched_from_what_to_what_and_when(station):
    alice, bob = factories.engineer(username="alice"), factories.engineer(username="bob")
    v1 = factories.version_row(model_name="bottle")
    v2 = factories.version_row(model_name="bottle")
    before = timezone.now()

    first = services.deployment_activate(station=station, version=v1, by=alice)
    second = services.deployment_activate(station=station, version=v2, by=bob)
    back = services.deployment_rollback(station=station, by=alice)
    services.deployment_deactivate(deployment=back, by=bob)

    entries = list(DeploymentHistory.objects.order_by("id"))
    assert [(e.action, e.from_deployment, e.to_deployment, e.by) for e in entries] == [
        ("activate", None, first, alice),
        ("activate", first, second, bob),
        ("rollback", second, first, alice),
        ("deactivate", first, None, bob),
    ]
    assert all(before <= e.at <= timezone.now() for e in entries)
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    assert served_number(station) is None


@pytest.mark.django_db
def test_rollback_walks_back_v3_v2_v1_then_refuses(station):
    versions = [factories.version_row(model_name="bottle") for _ in range(3)]
    for version in versions:
        services.deployment_activate(station=station, version=version)

    walked = []
    for _ in range(2):
        services.deployment_rollback(station=station)
        walked.append(served_number(station))
    with pytest.raises(ValidationError, match="nothing to roll back to"):
        services.deployment_rollback(station=station)

    assert walked == [2, 1]
    assert served_number(station) == 1
    assert Deployment.objects.filter(station=station, is_active=True).count() == 1


@pytest.mark.django_db
def test_rollback_restores_the_thresholds_that_version_served_with(station):
    v1 = factories.version_row(model_name="bottle")
    v2 = factories.version_row(model_name="bottle")
    crack = v1.mappings.get(label="crack").defect_type
    services.deployment_activate(
        station=station, version=v1, confidence_threshold=0.65, defect_thresholds={crack: 0.4}
    )
    services.deployment_activate(station=station, version=v2, confidence_threshold=0.9)

    services.deployment_rollback(station=station)

    active = selectors.active_deployment(station=station)
    assert active.confidence_threshold == 0.65
    assert {t.defect_type.code: t.threshold for t in active.defect_thresholds.all()} == {
        "crack": 0.4
    }


@pytest.mark.django_db
def test_reactivating_an_earlier_deployment_serves_it_again(station):
    first = services.deployment_activate(
        station=station, version=factories.version_row(model_name="bottle")
    )
    services.deployment_activate(
        station=station, version=factories.version_row(model_name="bottle")
    )

    services.deployment_reactivate(deployment=first)

    assert selectors.active_deployment(station=station).pk == first.pk
    assert DeploymentHistory.objects.order_by("-id").first().to_deployment == first


@pytest.mark.django_db
def test_a_product_deployment_wins_over_the_station_wide_one(station):
    product = factories.product(sku="YOG-125", lines=[station.line])
    services.deployment_activate(station=station, version=factories.version_row(model_name="a"))
    services.deployment_activate(
        station=station, product=product, version=factories.version_row(model_name="b")
    )

    other = factories.product(sku="YOG-500", lines=[station.line])

    assert selectors.active_deployment(station=station).version.model.name == "a"
    assert selectors.active_deployment(station=station, product=product).version.model.name == "b"
    # A product without a deployment of its own is judged by the station's.
    assert selectors.active_deployment(station=station, product=other).version.model.name == "a"


@pytest.mark.django_db
def test_a_product_deployment_serves_only_that_product(station):
    product = factories.product(sku="YOG-125", lines=[station.line])
    services.deployment_activate(
        station=station, product=product, version=factories.version_row(model_name="b")
    )

    assert selectors.active_deployment(station=station) is None
    assert selectors.active_deployment(station=station, product=product).version.model.name == "b"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "options",
    [
        lambda version: {"confidence_threshold": 1.2},
        lambda version: {"pass_review_rate": -0.5},
        lambda version: {"edge_recheck_rate": float("nan")},
        lambda version: {"defect_thresholds": {version.mappings.get(label="crack").defect_type: 7}},
    ],
    ids=["confidence", "pass-review", "edge-recheck-nan", "defect-threshold"],
)
def test_bad_thresholds_change_nothing_not_even_the_current_deployment(station, options):
    current = services.deployment_activate(
        station=station, version=factories.version_row(model_name="bottle")
    )
    v2 = factories.version_row(model_name="bottle")

    with pytest.raises(ValidationError, match=r"outside 0\.\.1|between 0 and 1"):
        services.deployment_activate(station=station, version=v2, **options(v2))

    assert list(Deployment.objects.values_list("pk", "is_active")) == [(current.pk, True)]
    assert DeploymentHistory.objects.count() == 1
    assert not DefectThreshold.objects.exists()


@pytest.mark.django_db
def test_a_deployed_version_cannot_be_validated_again(station, django_capture_on_commit_callbacks):
    version = factories.version_row(model_name="bottle")
    factories.deployment(station_obj=station, version=version)

    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(ValidationError, match="is serving CAP-1"),
    ):
        services.version_request_validation(version=version)

    version.refresh_from_db()
    assert version.status == "ready"
    assert not DBTaskResult.objects.exists()


@pytest.mark.django_db
def test_remapping_a_deployed_version_bumps_its_revision_so_workers_rebuild_rules(station):
    version = factories.version_row(model_name="bottle")
    factories.deployment(station_obj=station, version=version)
    factories.defect_type(code="chip")

    services.label_mappings_update(version=version, mapping={"crack": "crack"})  # no change
    version.refresh_from_db()
    assert version.mapping_revision == 0
    services.label_mappings_update(version=version, mapping={"crack": "chip"})

    version.refresh_from_db()
    assert version.mapping_revision == 1
    active = selectors.active_deployment(station=station)
    assert {m.label: m.meaning for m in active.version.mappings.all()}["crack"] == "chip"


@pytest.mark.django_db
def test_a_deployed_version_must_keep_a_label_that_passes(station):
    version = factories.version_row(model_name="bottle", labels=("ok", "crack"))
    factories.deployment(station_obj=station, version=version)

    with pytest.raises(ValidationError, match="keep at least one label meaning 'no defect'"):
        services.label_mappings_update(version=version, mapping={"ok": "crack"})

    version.refresh_from_db()
    assert version.mapping_revision == 0
    assert version.mappings.get(label="ok").no_defect
    # Swapping which label passes is fine: one still does.
    services.label_mappings_update(version=version, mapping={"ok": "crack", "crack": None})
    assert {m.label: m.meaning for m in version.mappings.all()} == {
        "ok": "crack",
        "crack": "no defect",
    }


@pytest.mark.django_db
def test_notes_change_any_time_preprocessing_only_while_the_version_serves_nowhere(station):
    version = factories.version_row(model_name="bottle")
    deployment = factories.deployment(station_obj=station, version=version)

    services.version_change(version=version, notes="retrained soon")
    with pytest.raises(services.VersionServing, match="serves"):
        services.version_change(version=version, resize_mode="letterbox", notes="changed")
    version.refresh_from_db()
    assert (version.resize_mode, version.notes) == ("stretch", "retrained soon")

    services.deployment_deactivate(deployment=deployment)
    services.version_change(version=version, resize_mode="letterbox")
    version.refresh_from_db()
    assert version.resize_mode == "letterbox"


@pytest.mark.django_db
def test_an_undeployed_version_can_be_validated_again(station, django_capture_on_commit_callbacks):
    version = factories.version_row(model_name="bottle", status="invalid", status_reason="timeout")

    with django_capture_on_commit_callbacks(execute=True):
        services.version_request_validation(version=version)

    version.refresh_from_db()
    assert (version.status, version.status_reason) == ("uploaded", "")
    task = DBTaskResult.objects.get()
    assert task.args_kwargs["args"] == [version.pk]


@pytest.mark.django_db
def test_preprocessing_outside_the_choices_is_refused(station):
    version = factories.version_row(model_name="bottle")

    with pytest.raises(ValidationError, match="not one of"):
        services.version_update(version=version, value_scale="0_2")

    version.refresh_from_db()
    assert version.value_scale == "0_1"


@committed_db
def test_a_second_worker_sees_an_activation_on_its_next_query(station):
    """Another connection (as another worker process has) reads what activation committed."""
    v1 = factories.version_row(model_name="bottle")
    v2 = factories.version_row(model_name="bottle")
    services.deployment_activate(station=station, version=v1)
    seen: list = []

    def other_worker() -> None:
        try:
            seen.append(served_number(station))
        finally:
            connection.close()

    def look() -> None:
        worker = threading.Thread(target=other_worker)
        worker.start()
        worker.join(timeout=30)

    look()
    services.deployment_activate(station=station, version=v2)
    look()
    services.deployment_rollback(station=station)
    look()

    assert seen == [1, 2, 1]


@pytest.mark.django_db
def test_rollback_target_ignores_the_time_it_was_rolled_back_to(station):
    """After v3 → rollback → v2, rolling back again goes to v1, not back to v3."""
    versions = [factories.version_row(model_name="bottle") for _ in range(3)]
    deployments = [services.deployment_activate(station=station, version=v) for v in versions]
    # Same timestamps everywhere: order must come from ids, not clock resolution.
    DeploymentHistory.objects.update(at=timezone.now() - dt.timedelta(minutes=1))

    services.deployment_rollback(station=station)
    assert selectors.active_deployment(station=station).pk == deployments[1].pk
    services.deployment_rollback(station=station)
    assert selectors.active_deployment(station=station).pk == deployments[0].pk
