from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config import views

api_v1 = [
    # inspection's first: its datasets/from-inspections/ must win over datasets/<name>/.
    path("", include("inspection.api.urls")),
    path("", include("models_registry.api.urls")),
    path("", include("reports.api.urls")),
    path("", include("common.job_api")),
    path("", include("integrations.urls")),
    path("", include("masterdata.api.urls")),
]

urlpatterns = [
    path("", views.landing, name="landing"),
    path("favicon.ico", views.favicon),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("masterdata.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "api/docs/",
        views.docs_page(SpectacularSwaggerView.as_view(url_name="schema")),
        name="api-docs",
    ),
    path(
        "api/redoc/",
        views.docs_page(
            SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html")
        ),
        name="api-redoc",
    ),
    path("dashboard/", include("inspection.urls")),
    path("reports/", include("reports.urls")),
]

handler403 = "config.views.forbidden"
handler404 = "config.views.not_found"
handler500 = "config.views.server_error"

admin.site.site_header = "LineSight administration"
admin.site.site_title = "LineSight"
admin.site.index_title = "Plant, models and inspections"
