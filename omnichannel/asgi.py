"""ASGI entry point: Django for HTTP, Channels for WebSockets."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "omnichannel.settings")

# Django must be set up before importing anything that touches models.
django.setup(set_prefix=False)

from omnichannel.realtime import http  # noqa: E402
from omnichannel.uploads import BodySizeLimit  # noqa: E402

# Django's get_asgi_application(), with the middleware run in one hop to a thread, unless
# OMNICHANNEL_STOCK_REALTIME (omnichannel/realtime/http.py); a request body larger than any
# workstream accepts is refused before Django reads it (omnichannel/uploads.py).
django_asgi_app = BodySizeLimit(http.application())

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
