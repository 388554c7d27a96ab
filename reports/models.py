"""The reports app keeps no tables of its own; background exports are ``common.models.Job`` rows.

``ReportAccess`` exists only to carry the reports permission (``reports.view_reports``).
"""

from django.db import models


class ReportAccess(models.Model):
    """No table: the holder of the permission to read reports and download exports."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_reports", "Can read reports and download exports")]
        verbose_name = "report access"

    def __str__(self) -> str:
        return "Report access"
