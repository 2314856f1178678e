"""WebSocket routes (docs/protocol.md). The widget socket checks the widget's allowed origins
itself and authenticates with a token, so it runs without Django's session and auth
middleware (on every frame sent they wrapped the consumer's ``send``, and each socket kept
their objects); the agent socket, which may use the login session, has them and accepts
only this server's own origins (scheme, host and port: omnichannel/origins.py)."""

from channels.auth import AuthMiddlewareStack
from django.urls import path

from agents.consumers import AgentConsumer
from conversations.consumers import WidgetConsumer
from omnichannel.origins import ServerOriginValidator

websocket_urlpatterns = [
    path("ws/widget/<slug:widget_key>/", WidgetConsumer.as_asgi()),
    path("ws/agent/", ServerOriginValidator(AuthMiddlewareStack(AgentConsumer.as_asgi()))),
]
