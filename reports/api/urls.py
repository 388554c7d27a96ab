from django.urls import path

from reports.api import evaluation, exports, views

urlpatterns = [
    path("exports/", exports.ExportsView.as_view(), name="api-exports"),
    path("exports/csv/", exports.ExportCsvView.as_view(), name="api-export-csv"),
    path("exports/<uuid:pk>/", exports.ExportDetailView.as_view(), name="api-export-detail"),
    path(
        "exports/<uuid:pk>/download/",
        exports.ExportDownloadView.as_view(),
        name="api-export-download",
    ),
    path("reports/summary/", views.SummaryView.as_view(), name="reports-summary"),
    path("reports/volume/", views.VolumeView.as_view(), name="reports-volume"),
    path("reports/pareto/", views.ParetoView.as_view(), name="reports-pareto"),
    path(
        "reports/model-versions/", views.ModelVersionsView.as_view(), name="reports-model-versions"
    ),
    path("reports/agreement/", views.AgreementView.as_view(), name="reports-agreement"),
    path("reports/inspectors/", views.InspectorsView.as_view(), name="reports-inspectors"),
    path(
        "evaluations/<int:pk>/export.xlsx",
        evaluation.EvaluationExportView.as_view(),
        name="evaluation-export-xlsx",
    ),
]
