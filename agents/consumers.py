"""The agent's WebSocket, ``/ws/agent/`` (PROTOCOL.md): the session, or an API key
(``agents.ApiToken``) in the first frame; then the agent's conversation, message, typing and
notification frames.

Staff users also receive every conversation's frames (the supervisor view); a staff user
without an agent profile connects read-only (``ready`` with ``"agent": null``)."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from agents.models import Agent
from conversations import events, services
from conversations.consumers import CLOSE_UNAUTHENTICATED, ProtocolConsumer, required
from conversations.errors import Forbidden, NotFound
from conversations.models import Conversation
from omnichannel.authentication import token_with_user

TYPING_INTERVAL = 2.0


def _principal_for_user(user) -> tuple[Agent | None, bool]:
    """(the user's agent profile, whether the user is staff); (None, False): no access."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None, False
    return Agent.objects.select_related("user").filter(user=user).first(), user.is_staff


def _principal_for_token(key: object) -> tuple[Agent | None, bool, int | None]:
    """As ``_principal_for_user``, for the user of an API key, and the ApiToken's pk."""
    if not isinstance(key, str) or not key or len(key) > 64:
        return None, False, None
    token = token_with_user(key)
    if token is None:
        return None, False, None
    return (*_principal_for_user(token.user), token.pk)


class AgentConsumer(ProtocolConsumer):
    # One agent socket carries all of the agent's conversations, and integrations (the benchmark
    # sends 25 messages a second on each) write through one socket: a larger frame budget.
    frame_rate = 100.0
    frame_burst = 200

    async def connect(self) -> None:
        await super().connect()
        self.agent: Agent | None = None
        # The agents.ApiToken this socket authenticated with (its auth frame), None for a
        # session: deleting that token (post_delete, sender=ApiToken) is to close the socket.
        self.api_token_id: int | None = None
        self.typing_sent: dict[int, float] = {}
        self.typing_targets: dict[int, str] = {}
        agent, is_staff = await database_sync_to_async(_principal_for_user)(self.scope.get("user"))
        if agent is not None or is_staff:
            await self._ready(agent, is_staff)

    async def authenticate(self, frame: dict[str, Any]) -> None:
        agent, is_staff, token_id = await database_sync_to_async(_principal_for_token)(frame.get("token"))
        if agent is None and not is_staff:
            await self.send_error("invalid_token", "The token is not valid.", close=CLOSE_UNAUTHENTICATED)
            return
        self.api_token_id = token_id
        await self._ready(agent, is_staff)

    async def _ready(self, agent: Agent | None, is_staff: bool) -> None:
        self.agent = agent
        self.mark_authenticated()
        queue_ids, payload = await database_sync_to_async(self._ready_state)()
        if agent is not None:
            await self.join(events.agent_group(agent.pk))
        for queue_id in queue_ids:
            await self.join(events.queue_group(queue_id))
        if is_staff:
            await self.join(events.SUPERVISORS_GROUP)
        await self.send_frame({"type": "ready", "agent": payload})

    def _ready_state(self):
        agent = self.agent
        if agent is None:
            return [], None
        return list(agent.queues.values_list("pk", flat=True)), events.agent_object(agent)

    def _require_agent(self) -> Agent:
        if self.agent is None:
            raise Forbidden("Only agents can write in conversations.")
        return self.agent

    def frame_handlers(self):
        return {"message.send": self.on_message_send, "typing": self.on_typing}

    async def on_message_send(self, frame: dict[str, Any]) -> None:
        agent = self._require_agent()
        conversation_id = required(frame, "conversation_id", int)
        client_id = required(frame, "client_id")
        body = required(frame, "body")
        result = await services.aagent_message_send(
            conversation_id=conversation_id, agent=agent, body=body, client_id=client_id
        )
        await self.send_message(events.message_object(result.message), force=not result.created)

    async def on_typing(self, frame: dict[str, Any]) -> None:
        import time

        self._require_agent()
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
            if self.agent is not None and (not agent or agent["id"] != self.agent.pk):
                self.typing_targets.pop(conversation["id"], None)  # no longer mine
        await self.send_frame(frame)
