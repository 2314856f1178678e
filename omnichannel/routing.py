"""WebSocket routes (PROTOCOL.md). The widget socket checks the widget's allowed origins
itself; the agent socket accepts only this server's own hosts."""

from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from agents.consumers import AgentConsumer
from conversations.consumers import WidgetConsumer

websocket_urlpatterns = [
    path("ws/widget/<slug:widget_key>/", WidgetConsumer.as_asgi()),
    path("ws/agent/", AllowedHostsOriginValidator(AgentConsumer.as_asgi())),
]
