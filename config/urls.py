from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import views

api_v1 = [
    path("", include("models_registry.api.urls")),
    path("", include("inspection.api.urls")),
    path("", include("reports.api.urls")),
]

urlpatterns = [
    path("", RedirectView.as_view(url="/dashboard/", permanent=False)),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("dashboard/", include("inspection.urls")),
    path("reports/", include("reports.urls")),
]

handler404 = "config.views.not_found"
handler500 = "config.views.server_error"

admin.site.site_header = "LineSight administration"
admin.site.site_title = "LineSight"
admin.site.index_title = "Plant, models and inspections"
