from django.urls import include, path, re_path

from inspection.api import datasets, manifest, retention, views
from inspection.api.station_state import StationStateView

urlpatterns = [
    path("inspections/", views.InspectionListCreateView.as_view(), name="api-inspections"),
    path(
        "inspections/<int:pk>/", views.InspectionDetailView.as_view(), name="api-inspection-detail"
    ),
    path(
        "inspections/<int:pk>/image/",
        views.InspectionImageView.as_view(),
        name="api-inspection-image",
    ),
    path(
        "stations/<str:code>/model/", manifest.StationModelView.as_view(), name="api-station-model"
    ),
    path("stations/<str:code>/state/", StationStateView.as_view(), name="api-station-state"),
    re_path(
        r"^stations/(?P<code>[^/]+)/model/(?P<kind>tflite|savedmodel)$",
        manifest.StationModelArtifactView.as_view(),
        name="api-station-model-artifact",
    ),
    path(
        "datasets/from-inspections/",
        datasets.DatasetFromInspectionsView.as_view(),
        name="api-dataset-from-inspections",
    ),
    path(
        "plants/<str:code>/retention/",
        retention.PlantRetentionView.as_view(),
        name="api-plant-retention",
    ),
    path(
        "plants/<str:code>/storage/", retention.PlantStorageView.as_view(), name="api-plant-storage"
    ),
    path("", include("inspection.api.review")),
]
