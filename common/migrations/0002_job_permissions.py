"""Quality engineers may view every job (others see the jobs they asked for)."""

from django.db import migrations

from common.migration_operations import grant_role_permissions


class Migration(migrations.Migration):
    dependencies = [
        ("common", "0001_initial"),
        ("masterdata", "0002_roles"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        grant_role_permissions(
            app_label="common", group="Quality engineers", models=["job"], actions=["view"]
        )
    ]
