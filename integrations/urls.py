"""Webhook endpoints, included under /api/v1/ by config.urls."""

from django.urls import path

from integrations import api

urlpatterns = [
    path("webhooks/", api.WebhookListView.as_view(), name="webhook-list"),
    path("webhooks/<int:pk>/", api.WebhookDetailView.as_view(), name="webhook-detail"),
    path(
        "webhooks/<int:pk>/deliveries/", api.DeliveryListView.as_view(), name="webhook-deliveries"
    ),
    path("webhooks/<int:pk>/resume/", api.WebhookResumeView.as_view(), name="webhook-resume"),
    path("webhooks/<int:pk>/test/", api.WebhookTestView.as_view(), name="webhook-test"),
    path(
        "webhooks/<int:pk>/rotate-secret/",
        api.WebhookRotateSecretView.as_view(),
        name="webhook-rotate-secret",
    ),
]
