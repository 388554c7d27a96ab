from django.urls import path

from inspection import consumers

websocket_urlpatterns = [
    path("ws/plant/", consumers.PlantConsumer.as_asgi()),
    path("ws/lines/<str:code>/", consumers.LineConsumer.as_asgi()),
    path("ws/review/", consumers.ReviewConsumer.as_asgi()),
]
