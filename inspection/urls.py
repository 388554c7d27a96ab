from django.urls import path

from inspection import views

app_name = "inspection"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("status.json", views.overview_status, name="overview-status"),
    path("lines/<str:code>/", views.line_view, name="line"),
    path("review/", views.review_queue, name="review"),
    path("inspections/<int:pk>/", views.inspection_detail, name="detail"),
]
