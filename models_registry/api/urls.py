"""Registry API routes, included at /api/v1/."""

from django.urls import path

from models_registry.api import datasets, evaluations, trainings, views

app_name = "registry"

urlpatterns = [
    path("models/", views.ModelListView.as_view(), name="model-list"),
    path("models/<str:name>/", views.ModelDetailView.as_view(), name="model-detail"),
    path("models/<str:name>/versions/", views.VersionListView.as_view(), name="version-list"),
    path(
        "models/<str:name>/versions/<int:number>/",
        views.VersionDetailView.as_view(),
        name="version-detail",
    ),
    path(
        "models/<str:name>/versions/<int:number>/mapping/",
        views.VersionMappingView.as_view(),
        name="version-mapping",
    ),
    path("deployments/", views.DeploymentListView.as_view(), name="deployment-list"),
    path(
        "deployments/rollback/",
        views.DeploymentRollbackView.as_view(),
        name="deployment-rollback",
    ),
    path("deployments/<int:pk>/", views.DeploymentDetailView.as_view(), name="deployment-detail"),
    path("datasets/", datasets.DatasetListView.as_view(), name="dataset-list"),
    path("datasets/<str:name>/", datasets.DatasetDetailView.as_view(), name="dataset-detail"),
    path(
        "datasets/<str:name>/images/", datasets.DatasetImportView.as_view(), name="dataset-images"
    ),
    path("datasets/<str:name>/splits/", datasets.DatasetSplitView.as_view(), name="dataset-splits"),
    path(
        "datasets/<str:name>/snapshots/",
        datasets.SnapshotListView.as_view(),
        name="dataset-snapshots",
    ),
    path(
        "datasets/<str:name>/snapshots/<int:number>/",
        datasets.SnapshotDetailView.as_view(),
        name="dataset-snapshot",
    ),
    path(
        "datasets/<str:name>/snapshots/<int:number>/export/",
        datasets.SnapshotExportView.as_view(),
        name="dataset-snapshot-export",
    ),
    path(
        "datasets/<str:name>/snapshots/<int:number>/export/<uuid:job_id>/",
        datasets.SnapshotExportDownloadView.as_view(),
        name="dataset-snapshot-export-download",
    ),
    path("evaluations/", evaluations.EvaluationListView.as_view(), name="evaluation-list"),
    path(
        "evaluations/<int:pk>/",
        evaluations.EvaluationDetailView.as_view(),
        name="evaluation-detail",
    ),
    path(
        "evaluations/<int:pk>/results/",
        evaluations.EvaluationResultsView.as_view(),
        name="evaluation-results",
    ),
    path(
        "evaluations/<int:pk>/enable-fast-path/",
        evaluations.EvaluationFastPathView.as_view(),
        name="evaluation-enable-fast-path",
    ),
    path("trainings/", trainings.TrainingListView.as_view(), name="training-list"),
    path("trainings/<int:pk>/", trainings.TrainingDetailView.as_view(), name="training-detail"),
    path(
        "trainings/<int:pk>/cancel/",
        trainings.TrainingCancelView.as_view(),
        name="training-cancel",
    ),
    path(
        "trainings/<int:pk>/compare/",
        trainings.TrainingCompareView.as_view(),
        name="training-compare",
    ),
]
