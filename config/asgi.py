"""ASGI entry point: HTTP through Django, WebSockets through Channels.

Devices' frames (``POST /api/v1/inspections/`` with a station token) take the
lean route of ``inspection.api.frames_asgi``, which answers as the DRF view
would, in one thread hop and without the middleware chain; everything else
is Django's.

The lifespan handler warms the models of the active deployments when a
worker process starts, so no frame waits for a model to load.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from inspection.api.frames_asgi import FrameRoute  # noqa: E402
from inspection.lifespan import lifespan  # noqa: E402
from inspection.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        # A device's frame takes the lean route; every other request goes to Django.
        "http": FrameRoute(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
        "lifespan": lifespan,
    }
)
