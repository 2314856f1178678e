"""ASGI entry point: Django for HTTP, Channels for WebSockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "omnichannel.settings")

# Django must be set up before importing anything that touches models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from omnichannel.routing import websocket_urlpatterns  # noqa: E402

# Origin checks and session middleware are per route (the widget socket accepts the widget's
# allowed origins and needs no session; the agent socket only this server's hosts); see
# omnichannel/routing.py.
application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
