"""The agent's WebSocket, ``/ws/agent/`` (PROTOCOL.md): the session, or a DRF token in the
first frame; then the agent's conversation, message, typing and notification frames."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from rest_framework.authtoken.models import Token

from agents.models import Agent
from conversations import events, services
from conversations.consumers import CLOSE_UNAUTHENTICATED, ProtocolConsumer, required
from conversations.errors import NotFound
from conversations.models import Conversation

TYPING_INTERVAL = 2.0


def _agent_for_user(user) -> Agent | None:
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    return Agent.objects.select_related("user").filter(user=user).first()


def _agent_for_token(key: object) -> Agent | None:
    if not isinstance(key, str) or not key or len(key) > 64:
        return None
    token = Token.objects.select_related("user").filter(key=key).first()
    return _agent_for_user(token.user) if token else None


class AgentConsumer(ProtocolConsumer):
    async def connect(self) -> None:
        await super().connect()
        self.agent: Agent | None = None
        self.typing_sent: dict[int, float] = {}
        self.typing_targets: dict[int, str] = {}
        agent = await database_sync_to_async(_agent_for_user)(self.scope.get("user"))
        if agent is not None:
            await self._ready(agent)

    async def authenticate(self, frame: dict[str, Any]) -> None:
        agent = await database_sync_to_async(_agent_for_token)(frame.get("token"))
        if agent is None:
            await self.send_error("invalid_token", "The token is not valid.", close=CLOSE_UNAUTHENTICATED)
            return
        await self._ready(agent)

    async def _ready(self, agent: Agent) -> None:
        self.agent = agent
        self.authenticated = True
        if self.auth_deadline is not None:
            self.auth_deadline.cancel()
        await self.join(events.agent_group(agent.pk))
        queue_ids, is_staff, payload = await database_sync_to_async(self._ready_state)()
        for queue_id in queue_ids:
            await self.join(events.queue_group(queue_id))
        if is_staff:
            await self.join(events.SUPERVISORS_GROUP)
        await self.send_frame({"type": "ready", "agent": payload})

    def _ready_state(self):
        agent = self.agent
        return list(agent.queues.values_list("pk", flat=True)), agent.user.is_staff, events.agent_object(agent)

    def frame_handlers(self):
        return {"message.send": self.on_message_send, "typing": self.on_typing}

    async def on_message_send(self, frame: dict[str, Any]) -> None:
        conversation_id = required(frame, "conversation_id", int)
        client_id = required(frame, "client_id")
        body = required(frame, "body")
        result = await database_sync_to_async(services.agent_message_send)(
            conversation_id=conversation_id, agent=self.agent, body=body, client_id=client_id
        )
        await self.send_message(events.message_object(result.message), force=not result.created)

    async def on_typing(self, frame: dict[str, Any]) -> None:
        import time

        conversation_id = required(frame, "conversation_id", int)
        now = time.monotonic()
        if now - self.typing_sent.get(conversation_id, 0.0) < TYPING_INTERVAL:
            return
        group = self.typing_targets.get(conversation_id)
        if group is None:
            group = await database_sync_to_async(self._customer_group)(conversation_id)
            self.typing_targets[conversation_id] = group
        self.typing_sent[conversation_id] = now
        await self.channel_layer.group_send(
            group, {"type": "broadcast", "frame": events.typing_frame(conversation_id, "agent")}
        )

    def _customer_group(self, conversation_id: int) -> str:
        row = (
            Conversation.objects.filter(pk=conversation_id, agent=self.agent)
            .values_list("customer_id", "workstream_id")
            .first()
        )
        if row is None:
            raise NotFound()
        return events.customer_group(*row)

    async def on_frame(self, frame: dict[str, Any]) -> None:
        if frame.get("type") == "conversation":
            conversation = frame["conversation"]
            agent = conversation.get("agent")
            if not agent or agent["id"] != self.agent.pk:
                self.typing_targets.pop(conversation["id"], None)  # no longer mine
        await self.send_frame(frame)
