from django.urls import path

from reports.api import evaluation, views

urlpatterns = [
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
