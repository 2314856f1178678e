"""``/api/v1/agent/me/``: the agent's presence and derived capacity."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from conversations import events, services
from conversations.api import ERRORS, AgentApiView
from conversations.serializers import AgentMeOut, PresenceInput


class AgentMeApi(AgentApiView):
    @extend_schema(responses={200: AgentMeOut, **ERRORS})
    def get(self, request: Request) -> Response:
        return Response(events.agent_object(self.agent(request)))

    @extend_schema(request=PresenceInput, responses={200: AgentMeOut, **ERRORS})
    def patch(self, request: Request) -> Response:
        data = PresenceInput(data=request.data)
        data.is_valid(raise_exception=True)
        agent = services.agent_presence_set(agent=self.agent(request), presence=data.validated_data["presence"])
        return Response(events.agent_object(agent))
