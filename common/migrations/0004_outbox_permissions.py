"""Quality engineers may read the outbox (what waits for MQTT and webhooks) in admin."""

from django.db import migrations

from common.migration_operations import grant_role_permissions


class Migration(migrations.Migration):
    dependencies = [
        ("common", "0003_outbox"),
        ("masterdata", "0002_roles"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        grant_role_permissions(
            app_label="common",
            group="Quality engineers",
            models=["outboxmessage"],
            actions=["view"],
        )
    ]
