"""The three roles as Django groups, with the permissions each needs.

Permissions are normally created after migrations run; they are created here
first so the groups can be filled on a fresh database.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = {
    "Quality engineers": {
        "masterdata": ["add", "change", "delete", "view"],
        "models_registry": ["add", "change", "delete", "view"],
        "inspection.inspection": ["add", "view"],
        "inspection.verification": ["view"],
        "inspection": ["view_dashboard"],
        "reports.exportjob": ["add", "view"],
        "reports": ["view_reports"],
    },
    "Inspectors": {
        "masterdata": ["view"],
        "inspection.inspection": ["view"],
        "inspection.verification": ["add", "view"],
        "inspection": ["view_dashboard", "review_inspection"],
    },
    "Viewers": {
        "masterdata": ["view"],
        "inspection.inspection": ["view"],
        "inspection.verification": ["view"],
        "reports.exportjob": ["add", "view"],
        "reports": ["view_reports"],
    },
}


def _permissions_for(apps, spec):
    Permission = apps.get_model("auth", "Permission")
    found = []
    for target, actions in spec.items():
        app_label, _, model = target.partition(".")
        app_permissions = Permission.objects.filter(content_type__app_label=app_label)
        for action in actions:
            if action in {"add", "change", "delete", "view"}:
                # Only Django's default permissions: "view_dashboard" is not "view".
                models = (
                    [model]
                    if model
                    else [m._meta.model_name for m in apps.get_app_config(app_label).get_models()]
                )
                codenames = [f"{action}_{name}" for name in models]
            else:
                codenames = [action]
            permissions = list(app_permissions.filter(codename__in=codenames))
            if len(permissions) != len(codenames):
                raise RuntimeError(f"Missing permissions among {app_label}.{codenames}.")
            found.extend(permissions)
    return found


def create_roles(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    for name, spec in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(_permissions_for(apps, spec))


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLES)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("masterdata", "0001_initial"),
        ("models_registry", "0001_initial"),
        ("inspection", "0001_initial"),
        ("reports", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
