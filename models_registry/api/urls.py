"""Registry API routes, included at /api/v1/."""

from django.urls import path

from models_registry.api import views

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
]
