"""Quality engineers manage webhooks and read their delivery log (role groups: masterdata 0002)."""

from django.db import migrations

from common.migration_operations import grant_role_permissions


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0001_initial"),
        ("masterdata", "0002_roles"),
    ]

    operations = [
        grant_role_permissions(
            app_label="integrations", group="Quality engineers", models=["webhooksubscription"]
        ),
        grant_role_permissions(
            app_label="integrations",
            group="Quality engineers",
            models=["webhookdelivery"],
            actions=["view"],
        ),
    ]
