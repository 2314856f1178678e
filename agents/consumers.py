"""The agent's WebSocket, ``/ws/agent/`` (docs/protocol.md): the session, or an API key
(``agents.ApiToken``) in the first frame; then the agent's conversation, message, typing and
notification frames.

Staff users also receive every conversation's frames (the supervisor view); a staff user
without an agent profile connects read-only (``ready`` with ``"agent": null``)."""

from __future__ import annotations

import logging
import random
import time
from importlib import import_module
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.db import DatabaseError
from django.utils.crypto import constant_time_compare

from agents.access import session_credential, token_credential
from agents.models import Agent, ApiToken
from conversations import events, realtime, services
from conversations.consumers import CLOSE_UNAUTHENTICATED, ProtocolConsumer, message_body, required
from conversations.errors import Forbidden, NotFound
from conversations.models import Conversation
from omnichannel.api_auth import token_with_user

TYPING_INTERVAL = 2.0
# Seconds between checks that an agent socket's access still stands, for the ends of access no
# signal announces (agents.signals announces the others at once).
ACCESS_CHECK_INTERVAL = 60.0

logger = logging.getLogger(__name__)


def _principal_for_user(user) -> tuple[Agent | None, bool]:
    """(the user's agent profile, whether the user is staff); (None, False): no access."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None, False
    return Agent.objects.select_related("user").filter(user=user).first(), user.is_staff


def _principal_for_token(key: object) -> tuple[Agent | None, bool, ApiToken | None]:
    """As ``_principal_for_user``, for the user of an API key, and its ``agents.ApiToken``."""
    token = token_with_user(key) if isinstance(key, str) and key and len(key) <= 64 else None
    return (*_principal_for_user(token.user if token else None), token)


def _access_holds(user_id: int, session_key: str | None, token_pk: object, as_agent: bool) -> bool:
    """Whether what a socket authenticated with still stands: the session still signs in this
    user (not logged out, expired, or ended by a password change) or the token still exists,
    the user is still active, and still an agent if the socket opened as one (else staff)."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return False
    if session_key is not None:
        session = _session_store()(session_key)
        if str(session.get(SESSION_KEY)) != str(user_id) or not constant_time_compare(
            session.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash()
        ):
            return False
    elif not ApiToken.objects.filter(pk=token_pk, user_id=user_id).exists():
        return False
    return Agent.objects.filter(user_id=user_id).exists() if as_agent else user.is_staff


def _session_store():
    return import_module(settings.SESSION_ENGINE).SessionStore


class AgentConsumer(ProtocolConsumer):
    # One agent socket carries all of the agent's conversations, and integrations (the benchmark
    # sends 25 messages a second on each) write through one socket: a larger frame budget.
    frame_rate = 100.0
    frame_burst = 200
    timer_event = "access.checked"  # the minute check that the access still stands

    async def connect(self) -> None:
        await super().connect()
        self.agent: Agent | None = None
        # The agents.ApiToken this socket authenticated with (its auth frame), None for a
        # session: deleting that token (post_delete, sender=ApiToken) is to close the socket.
        self.api_token_id: int | None = None
        self.typing_sent: dict[int, float] = {}
        self.typing_targets: dict[int, str] = {}
        user = self.scope.get("user")
        agent, is_staff = await database_sync_to_async(_principal_for_user)(user)
        if agent is not None or is_staff:
            session_key = getattr(self.scope.get("session"), "session_key", None)
            self._credential(user.pk, session_key=session_key, credential=session_credential(session_key))
            await self._ready(agent, is_staff)

    async def authenticate(self, frame: dict[str, Any]) -> None:
        agent, is_staff, token = await database_sync_to_async(_principal_for_token)(frame.get("token"))
        if agent is None and not is_staff:
            await self.send_error("invalid_token", "The token is not valid.", close=CLOSE_UNAUTHENTICATED)
            return
        self._credential(token.user_id, token_pk=token.pk, credential=token_credential(token))
        await self._ready(agent, is_staff)

    def _credential(self, user_id: int, *, credential: list | None, session_key=None, token_pk=None) -> None:
        self.user_id, self.credential = user_id, credential
        self.session_key, self.api_token_id = session_key, token_pk

    async def _ready(self, agent: Agent | None, is_staff: bool) -> None:
        self.agent = agent
        self.mark_authenticated()
        # Joined before the access is checked again (in _ready_state): an end of access committed
        # after the first check is either seen by that check or announced to this group.
        await self.join(events.user_group(self.user_id))
        holds, queue_ids, payload = await database_sync_to_async(self._ready_state)()
        if not holds:
            await self.access_ended()
            return
        self._schedule_access_check()
        if agent is not None:
            await self.join(events.agent_group(agent.pk))
            if self.api_token_id is None and not getattr(
                self, "inbox_counted", False
            ):  # an inbox page, not an integration
                await database_sync_to_async(services.agent_inbox_open)(agent_id=agent.pk)
                self.inbox_counted = True
        for queue_id in queue_ids:
            await self.join(events.queue_group(queue_id))
        if is_staff:
            await self.join(events.SUPERVISORS_GROUP)
        await self.send_frame({"type": "ready", "agent": payload})

    async def disconnect(self, code) -> None:
        await super().disconnect(code)
        if getattr(self, "inbox_counted", False):
            self.inbox_counted = False
            try:
                await database_sync_to_async(services.agent_inbox_close)(agent_id=self.agent.pk)
            except DatabaseError:
                logger.warning("could not record an inbox closing", exc_info=True)

    def _ready_state(self):
        holds = self._access_holds()
        agent = self.agent
        if agent is None or not holds:
            return holds, [], None
        return holds, list(agent.queues.values_list("pk", flat=True)), events.agent_object(agent)

    def _access_holds(self) -> bool:
        return _access_holds(self.user_id, self.session_key, self.api_token_id, self.agent is not None)

    # --- The end of access (docs/protocol.md, "Access that ends when it should") ------------------

    async def access_revoked(self, event: dict[str, Any]) -> None:
        """agents.signals announced the end of this user's access: with this socket's
        credential, or with none (all of the user's sockets)."""
        if event.get("credential") in (None, self.credential):
            await self.access_ended()

    async def access_checked(self, event: dict[str, Any]) -> None:
        """Every ACCESS_CHECK_INTERVAL seconds: an end of access no signal announced (a session
        that expired or was deleted, a user changed by a bulk update)."""
        if not await database_sync_to_async(self._access_holds)():
            await self.access_ended()
            return
        self._schedule_access_check()

    def _schedule_access_check(self) -> None:
        self.set_timer(ACCESS_CHECK_INTERVAL * random.uniform(0.9, 1.1))  # noqa: S311 - spread, not secrecy

    async def access_ended(self) -> None:
        await self.send_error(
            "authentication_required",
            "Your access ended (signed out, deactivated, no longer an agent, or the token was deleted).",
            close=CLOSE_UNAUTHENTICATED,
        )

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
        body = message_body(frame)
        result = await realtime.aagent_message_send(
            conversation_id=conversation_id,
            agent=agent,
            body=body,
            client_id=client_id,
            internal=frame.get("internal"),
            attachments=frame.get("attachments"),
        )
        await self.send_message(events.message_object(result.message, for_agent=True), force=not result.created)

    async def on_typing(self, frame: dict[str, Any]) -> None:
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
