from django.urls import path

from reports import views

app_name = "reports"
urlpatterns = [
    path("", views.report_page, name="page"),
    path("export.xlsx", views.export_xlsx, name="export-xlsx"),
    path("export.csv", views.export_csv, name="export-csv"),
    path("exports/<uuid:job_id>/", views.export_job, name="export-job"),
    path("exports/<uuid:job_id>/download/", views.export_job_download, name="export-job-download"),
    path(
        "exports/<uuid:job_id>/run-again/", views.export_job_run_again, name="export-job-run-again"
    ),
]
