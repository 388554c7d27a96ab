"""The roles' permissions on retention and storage.

Quality engineers set retention policies and read what retention did; every role
sees a plant's storage. (Frames stored before this release keep ``image_bytes``
empty: storage figures count them at the mean size of the known ones.)
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {
    "Quality engineers": [
        "add_retentionpolicy",
        "change_retentionpolicy",
        "view_retentionpolicy",
        "view_retentionday",
        "view_plantstorage",
    ],
    "Inspectors": ["view_plantstorage"],
    "Viewers": ["view_plantstorage"],
}


def grant(apps, schema_editor):
    config = apps.get_app_config("inspection")
    config.models_module = True
    create_permissions(config, apps=apps, verbosity=0)
    config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GRANTS.items():
        group = Group.objects.filter(name=name).first()
        if group is None:
            continue
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="inspection", codename__in=codenames)
        )


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    codenames = {codename for codenames in GRANTS.values() for codename in codenames}
    permissions = Permission.objects.filter(
        content_type__app_label="inspection", codename__in=codenames
    )
    for group in Group.objects.filter(name__in=list(GRANTS)):
        group.permissions.remove(*permissions)


class Migration(migrations.Migration):
    dependencies = [
        ("inspection", "0003_retention"),
        ("masterdata", "0002_roles"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
