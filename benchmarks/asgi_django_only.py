"""The product's ASGI app without the lean frame route: every request through Django.

For ``inspection_api.py --compare-django`` only: the frame path as it was before
issue 12 (Django's ASGI handler, the middleware chain, the DRF view), measured
in the same run as ``config.asgi:application``.
"""

from channels.routing import ProtocolTypeRouter

from config.asgi import django_asgi_app, lifespan

application = ProtocolTypeRouter({"http": django_asgi_app, "lifespan": lifespan})
