"""Only quality engineers change master data; other roles cannot, whatever they try."""

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from masterdata.models import DefectType, Station
from tests import factories
from tests.masterdata.spreadsheets import csv_file

pytestmark = pytest.mark.django_db

MODELS = ["plant", "line", "station", "product", "defecttype"]


@pytest.fixture
def rows():
    plant = factories.plant(code="LYON")
    line = factories.line(code="L1", plant_obj=plant)
    station, token = factories.station_with_token(code="S1", line_obj=line)
    return {
        "plant": plant,
        "line": line,
        "station": station,
        "product": factories.product(sku="YOG", lines=[line]),
        "defecttype": factories.defect_type(code="crack"),
        "token": token,
    }


def admin_urls(rows) -> list[str]:
    urls = []
    for name in MODELS:
        urls += [
            reverse(f"admin:masterdata_{name}_changelist"),
            reverse(f"admin:masterdata_{name}_add"),
            reverse(f"admin:masterdata_{name}_change", args=[rows[name].pk]),
            reverse(f"admin:masterdata_{name}_import"),
            reverse(f"admin:masterdata_{name}_export"),
        ]
    return [*urls, reverse("admin:masterdata_station_token", args=[rows["station"].pk, "rotate"])]


@pytest.mark.parametrize(
    "role", [factories.engineer, lambda: User.objects.create_superuser("root")]
)
def test_quality_engineers_and_superusers_reach_every_master_data_page(client, rows, role):
    client.force_login(role())

    for url in admin_urls(rows):
        assert client.get(url).status_code == 200, url


@pytest.mark.parametrize("role", [factories.inspector, factories.viewer])
def test_inspectors_and_viewers_are_sent_to_the_login_page(client, rows, role):
    client.force_login(role())

    for url in admin_urls(rows):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("admin:login")), url


@pytest.mark.parametrize("role", [factories.inspector, factories.viewer])
def test_staff_flag_alone_does_not_let_other_roles_change_anything(client, rows, role):
    """Permissions, not the menu, stop them: even marked staff they only read."""
    client.force_login(role(is_staff=True))
    station = rows["station"]

    forbidden = [
        ("get", reverse("admin:masterdata_defecttype_add"), {}),
        ("get", reverse("admin:masterdata_defecttype_import"), {}),
        (
            "post",
            reverse("admin:masterdata_defecttype_import"),
            {
                "format": "0",
                "import_file": SimpleUploadedFile("d.csv", csv_file([["code"], ["x"]])),
            },
        ),
        (
            "post",
            reverse("admin:masterdata_defecttype_delete", args=[rows["defecttype"].pk]),
            {"post": "yes"},
        ),
        (
            "post",
            reverse("admin:masterdata_station_change", args=[station.pk]),
            {"code": "HACKED", "line": rows["line"].pk, "active": "on"},
        ),
        ("post", reverse("admin:masterdata_station_token", args=[station.pk, "rotate"]), {}),
        ("post", reverse("admin:masterdata_station_token", args=[station.pk, "revoke"]), {}),
    ]
    for method, url, data in forbidden:
        assert getattr(client, method)(url, data).status_code == 403, url

    response = client.post(
        reverse("admin:masterdata_station_changelist"),
        {"action": "revoke_tokens", "_selected_action": [station.pk], "post": "yes"},
    )
    assert response.status_code == 200  # the list again: the action is not offered to them
    assert "Revoked" not in response.content.decode()
    station.refresh_from_db()
    assert station.code == "S1" and station.token_prefix == rows["token"][:12]
    assert DefectType.objects.filter(code="crack").exists()
    assert not DefectType.objects.filter(code="x").exists()
    assert Station.objects.count() == 1
