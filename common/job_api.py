"""``GET /api/v1/jobs/{id}/``: the state of any background job, the same for every kind."""

from django.http import Http404
from django.shortcuts import get_object_or_404
from django.urls import path
from rest_framework import serializers
from rest_framework.generics import RetrieveAPIView

from common.jobs import jobs_sweep
from common.models import Job


class JobSerializer(serializers.ModelSerializer):
    target = serializers.SerializerMethodField()
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "state",
            "progress",
            "message",
            "error",
            "created",
            "started",
            "finished",
            "requested_by",
            "target",
            "result",
        ]

    def get_target(self, job: Job) -> dict | None:
        if job.target_type_id is None:
            return None
        return {
            "type": f"{job.target_type.app_label}.{job.target_type.model}",
            "id": job.target_id,
        }


class JobDetailView(RetrieveAPIView):
    """A job its requester, or anyone allowed to view jobs, may read."""

    serializer_class = JobSerializer

    def get_object(self) -> Job:
        jobs_sweep()  # a job whose worker died reads as failed, not running forever
        job = get_object_or_404(
            Job.objects.select_related("target_type", "requested_by"), pk=self.kwargs["pk"]
        )
        user = self.request.user
        if job.requested_by_id != user.pk and not user.has_perm("common.view_job"):
            raise Http404("No job with this id.")
        return job


urlpatterns = [path("jobs/<uuid:pk>/", JobDetailView.as_view(), name="job-detail")]
