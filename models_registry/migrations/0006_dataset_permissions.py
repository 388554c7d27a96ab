"""Quality engineers manage datasets, as they manage models (role groups: masterdata 0002)."""

from django.db import migrations

from common.migration_operations import grant_role_permissions


class Migration(migrations.Migration):
    dependencies = [
        ("models_registry", "0005_datasets"),
        ("masterdata", "0002_roles"),
    ]

    operations = [
        grant_role_permissions(
            app_label="models_registry",
            group="Quality engineers",
            models=[
                "dataset",
                "datasetlabel",
                "datasetimage",
                "datasetsplit",
                "datasetsnapshot",
                "snapshotimage",
            ],
        )
    ]
