"""The shapes of export requests and of an export's state, for the exports API and its schema."""

from django.urls import reverse
from rest_framework import serializers

from common.api import StrictCharField
from common.models import Job, JobState
from reports.api.views import FILTER_PARAMETERS
from reports.exports import EXPORT_FORMATS
from reports.jobs import export_download_name, export_format


class ExportRequestSerializer(serializers.Serializer):
    """``format`` and the report filters, named as the reports page and API name them.

    A filter left out means all; an empty or null one is refused (an unset variable in a
    script must not export every station as if it were one).
    """

    format = serializers.ChoiceField(
        choices=EXPORT_FORMATS,
        default="xlsx",
        help_text="'xlsx': the workbook of every report table and every inspection; "
        "'csv': one line per inspection.",
    )

    def get_fields(self) -> dict:
        fields = super().get_fields()
        for parameter in FILTER_PARAMETERS:
            fields[parameter.name] = StrictCharField(
                required=False,
                allow_blank=True,
                allow_null=True,
                help_text=parameter.description,
            )
        return fields


class ExportSerializer(serializers.Serializer):
    """A background export: where it stands and, once done, where to download it."""

    id = serializers.UUIDField()
    format = serializers.SerializerMethodField()
    state = serializers.CharField(help_text="queued, running, done, failed or cancelled.")
    progress = serializers.FloatField(help_text="0 to 1.")
    message = serializers.CharField(help_text="What the worker is doing, e.g. 'Wrote 1000 rows'.")
    error = serializers.CharField(help_text="Why it failed; empty unless failed.")
    filters = serializers.DictField(
        source="payload.filters", child=serializers.CharField(), help_text="As validated."
    )
    created = serializers.DateTimeField()
    started = serializers.DateTimeField(allow_null=True)
    finished = serializers.DateTimeField(allow_null=True)
    row_count = serializers.SerializerMethodField()
    filename = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    def get_format(self, job: Job) -> str:
        return export_format(job)

    def get_row_count(self, job: Job) -> int | None:
        """Rows in the file, once done."""
        return (job.result or {}).get("row_count") if job.state == JobState.DONE else None

    def get_filename(self, job: Job) -> str:
        return export_download_name(job)

    def get_url(self, job: Job) -> str:
        """This export's state (poll it)."""
        return self._absolute("api-export-detail", job)

    def get_download_url(self, job: Job) -> str | None:
        """The file, with the same token; null until the export is done."""
        if job.state != JobState.DONE:
            return None
        return self._absolute("api-export-download", job)

    def _absolute(self, name: str, job: Job) -> str:
        path = reverse(name, args=[job.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path
