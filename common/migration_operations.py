"""Operations data migrations share: a role (a Django group) gets an app's permissions."""

from collections.abc import Iterable

from django.contrib.auth.management import create_permissions
from django.db import migrations

ALL_ACTIONS = ("add", "change", "delete", "view")


def grant_role_permissions(
    *, app_label: str, group: str, models: Iterable[str], actions: Iterable[str] = ALL_ACTIONS
) -> migrations.RunPython:
    """A reversible RunPython that gives ``group`` these permissions of ``app_label``'s models.

    Permissions are made first (Django makes them only after all migrations ran);
    a database without the group (it is made by masterdata's roles migration) is left alone.
    """
    codenames = [f"{action}_{model}" for model in models for action in actions]

    def permissions(apps):
        Permission = apps.get_model("auth", "Permission")
        return Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames)

    def role(apps):
        return apps.get_model("auth", "Group").objects.filter(name=group).first()

    def grant(apps, schema_editor):
        app_config = apps.get_app_config(app_label)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
        if (found := role(apps)) is not None:
            found.permissions.add(*permissions(apps))

    def revoke(apps, schema_editor):
        if (found := role(apps)) is not None:
            found.permissions.remove(*permissions(apps))

    return migrations.RunPython(grant, revoke)
