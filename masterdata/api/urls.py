"""Master data API routes, included at /api/v1/."""

from django.urls import path

from masterdata.api import views

app_name = "masterdata-api"

urlpatterns = [
    path("plants/", views.PlantListView.as_view(), name="plant-list"),
    path("plants/<str:code>/", views.PlantDetailView.as_view(), name="plant-detail"),
    path("plants/<str:code>/shifts/", views.ShiftListView.as_view(), name="shift-list"),
    path(
        "plants/<str:code>/shifts/<str:name>/",
        views.ShiftDetailView.as_view(),
        name="shift-detail",
    ),
    path("lines/", views.LineListView.as_view(), name="line-list"),
    path("lines/<str:code>/", views.LineDetailView.as_view(), name="line-detail"),
    path("stations/", views.StationListView.as_view(), name="station-list"),
    path("stations/<str:code>/", views.StationDetailView.as_view(), name="station-detail"),
    path(
        "stations/<str:code>/rotate-token/",
        views.StationTokenRotateView.as_view(),
        name="station-rotate-token",
    ),
    path(
        "stations/<str:code>/revoke-token/",
        views.StationTokenRevokeView.as_view(),
        name="station-revoke-token",
    ),
    path("products/", views.ProductListView.as_view(), name="product-list"),
    path("products/<str:sku>/", views.ProductDetailView.as_view(), name="product-detail"),
    path("defect-types/", views.DefectTypeListView.as_view(), name="defect-type-list"),
    path(
        "defect-types/<str:code>/",
        views.DefectTypeDetailView.as_view(),
        name="defect-type-detail",
    ),
]
