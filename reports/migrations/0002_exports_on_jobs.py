"""Background exports move from reports.ExportJob to the shared common.Job (kind report_export).

Each ExportJob becomes a Job with the same id (its page, download URL and
stored file ``exports/<id>.xlsx`` stay as they were), its state, times, who
asked, its filters in ``payload`` and its file and row count in ``result``.
An export still queued or running when the upgrade ran is failed with a
sentence saying so (its task was sent to the old code); its page offers to
run it again. The ``reports.view_reports`` permission moves, with every group
and person holding it, to ``ReportAccess``, a model without a table.

Reversible: going back turns the report_export jobs into ExportJob rows again
(jobs whose requester was deleted are dropped: ExportJob needs one) and moves
the permission back. The groups' old add/view permissions on ExportJob, which
no view checked, are not restored.
"""

from django.db import migrations, models

KIND = "report_export"
INTERRUPTED = (
    "This export had not finished when LineSight was upgraded to shared background jobs; "
    "run it again."
)


def _download_url(job_id) -> str:
    return f"/reports/exports/{job_id}/download/"


def _as_job(Job, export):
    done = export.status == "done"
    unfinished = export.status in {"queued", "running"}
    params = export.filters or {}
    result = {}
    if done:
        result = {
            "file": export.file.name if export.file else "",
            "row_count": export.row_count,
            "filename": f"linesight-report-{params.get('from')}-to-{params.get('to')}.xlsx",
            "download_url": _download_url(export.pk),
        }
    return Job(
        id=export.pk,
        kind=KIND,
        queue="exports",
        state="failed" if unfinished else export.status,
        progress=1.0 if done else 0.0,
        message={"done": "Done"}.get(export.status, "Failed"),
        error=INTERRUPTED if unfinished else export.error,
        requested_by_id=export.requested_by_id,
        payload={"filters": params},
        result=result,
        started=None if export.status == "queued" else export.created_at,
        finished=export.finished_at,
        attempt=0 if export.status == "queued" else 1,
    )


def _move_permission(apps, *, from_model: str, to_model: str) -> None:
    """Give the content type of ``to_model`` the view_reports permission, groups and all."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    target, _ = ContentType.objects.get_or_create(app_label="reports", model=to_model)
    if Permission.objects.filter(content_type=target, codename="view_reports").exists():
        return
    Permission.objects.filter(
        content_type__app_label="reports", content_type__model=from_model, codename="view_reports"
    ).update(content_type=target)


def exports_to_jobs(apps, schema_editor):
    ExportJob = apps.get_model("reports", "ExportJob")
    Job = apps.get_model("common", "Job")
    for export in ExportJob.objects.order_by("created_at").iterator(chunk_size=500):
        _as_job(Job, export).save(force_insert=True)
        # auto_now_add stamped "now" on save: give the job the export's own creation time.
        Job.objects.filter(pk=export.pk).update(created=export.created_at)
    _move_permission(apps, from_model="exportjob", to_model="reportaccess")
    # The table is dropped next; its content type and default permissions go with it.
    apps.get_model("contenttypes", "ContentType").objects.filter(
        app_label="reports", model="exportjob"
    ).delete()


def jobs_to_exports(apps, schema_editor):
    ExportJob = apps.get_model("reports", "ExportJob")
    Job = apps.get_model("common", "Job")
    jobs = Job.objects.filter(kind=KIND)
    for job in jobs.filter(requested_by__isnull=False).iterator(chunk_size=500):
        result = job.result or {}
        export = ExportJob(
            id=job.pk,
            requested_by_id=job.requested_by_id,
            filters=(job.payload or {}).get("filters", {}),
            status=job.state if job.state != "cancelled" else "failed",
            error=job.error,
            row_count=result.get("row_count"),
            file=result.get("file", "") if job.state == "done" else "",
            finished_at=job.finished,
        )
        export.save(force_insert=True)
        ExportJob.objects.filter(pk=job.pk).update(created_at=job.created)
    jobs.delete()
    _move_permission(apps, from_model="reportaccess", to_model="exportjob")


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0001_initial"),
        ("common", "0002_job_permissions"),
        # The roles were filled with ExportJob's permissions; they must exist first.
        ("masterdata", "0002_roles"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.CreateModel(
            name="ReportAccess",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
            ],
            options={
                "verbose_name": "report access",
                "permissions": [("view_reports", "Can read reports and download exports")],
                "managed": False,
                "default_permissions": (),
            },
        ),
        migrations.RunPython(exports_to_jobs, jobs_to_exports),
        migrations.DeleteModel(name="ExportJob"),
    ]
