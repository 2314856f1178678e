"""The wire format (docs/protocol.md) and the one broadcast path.

One function builds each frame type; ``publish_on_commit`` is the only way services
publish, so no client ever sees something that was rolled back. Groups:
``customer.<customer id>.<workstream id>`` (every socket of a customer on the widgets of one
workstream: all tabs see the current conversation and the next one), ``agent.<id>`` (an agent's sockets),
``queue.<id>`` (agents who may pick from a queue) and ``supervisors``."""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import weakref
from collections.abc import Iterable
from typing import Any

from channels.layers import get_channel_layer
from django.db import transaction

from conversations import files
from conversations.models import Conversation, Message
from conversations.selectors import agent_capacity, waiting_counts
from omnichannel.realtime.serverloop import server_loop
from workstreams.models import DistributionMode

logger = logging.getLogger(__name__)

SUPERVISORS_GROUP = "supervisors"


def customer_group(customer_id: int, workstream_id: int) -> str:
    return f"customer.{customer_id}.{workstream_id}"


def agent_group(agent_id: int) -> str:
    return f"agent.{agent_id}"


def queue_group(queue_id: int) -> str:
    return f"queue.{queue_id}"


def user_group(user_id: int) -> str:
    """Every agent socket of one user, whatever it authenticated with: where the end of its
    access is announced (``publish_access_revoked``)."""
    return f"user.{user_id}"


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


# --- Objects --------------------------------------------------------------------------------------


def message_object(message: Message, *, for_agent: bool = False) -> dict[str, Any]:
    """A message as its customer sees it (``seq``: the customer's numbering), or as agents do
    (``for_agent``: every message numbered, internal notes included). A note never has a
    customer's object: asking for one is a bug that would leak it."""
    if not for_agent and message.internal:
        raise ValueError("an internal note has no customer-facing object")
    return {
        "conversation_id": message.conversation_id,
        "seq": message.seq if for_agent else message.customer_seq,
        "client_id": message.client_id,
        "sender": message.sender,
        "author": message.author,
        "kind": message.kind or None,
        "body": message.body,
        "channel": message.channel,
        "internal": message.internal,
        "attachments": [files.attachment_object(summary) for summary in message.attachments or ()],
        "created_at": _iso(message.created_at),
    }


def conversation_object(conversation: Conversation, *, for_agent: bool = False) -> dict[str, Any]:
    agent = conversation.agent
    data: dict[str, Any] = {
        "id": conversation.pk,
        "status": conversation.status,
        "mode": conversation.mode,
        "customer_can_end": conversation.customer_can_end,
        "agent": {"id": agent.pk, "name": agent.display_name} if agent else None,
        "last_seq": conversation.last_seq if for_agent else conversation.customer_last_seq,
        "created_at": _iso(conversation.created_at),
        "closed_at": _iso(conversation.closed_at),
    }
    if for_agent:
        customer = conversation.customer
        data.update(
            {
                "workstream": {"id": conversation.workstream_id, "name": conversation.workstream.name},
                "queue": {"id": conversation.queue_id, "name": conversation.queue.name},
                "customer": {
                    "id": customer.pk,
                    "name": customer.name,
                    "email": customer.email,
                    "authenticated": customer.authenticated,
                },
                "queued_at": _iso(conversation.queued_at),
                "waiting_since": _iso(conversation.waiting_since),
                "returned_at": _iso(conversation.returned_at),
                "last_customer_message_at": _iso(conversation.last_customer_message_at),
                "last_activity_at": _iso(conversation.last_activity_at),
                "ended_at": _iso(conversation.ended_at),
                "labels": label_names(conversation),
                "csat": csat_object(conversation),
                "prechat": conversation.prechat,
            }
        )
    return data


def csat_object(conversation: Conversation) -> dict[str, Any] | None:
    """The customer's rating of the conversation, once given (agent-facing only)."""
    if conversation.csat_submitted_at is None:
        return None
    return {"rating": conversation.csat_rating, "comment": conversation.csat_comment}


def label_names(conversation: Conversation) -> list[str]:
    """The conversation's labels by name, from ``prefetch_related("labels")`` when the caller
    fetched them with the conversation (lists, a batch of assignments), else one query."""
    prefetched = getattr(conversation, "_prefetched_objects_cache", {}).get("labels")
    if prefetched is not None:
        return sorted(label.name for label in prefetched)
    return list(conversation.labels.order_by("name").values_list("name", flat=True))


def agent_object(agent, now=None, used: int | None = None) -> dict[str, Any]:
    """As ``GET /api/v1/agent/me/`` (``used``: the capacity in use, when the caller counted it)."""
    if used is None:
        capacity = agent_capacity(agent, now)
    else:
        capacity = {"total": agent.capacity, "used": used, "available": max(agent.capacity - used, 0)}
    return {"id": agent.pk, "name": agent.display_name, "presence": agent.presence, "capacity": capacity}


# --- Frames ---------------------------------------------------------------------------------------


def message_frame(message: Message, *, for_agent: bool = False) -> dict[str, Any]:
    return {"type": "message", "message": message_object(message, for_agent=for_agent)}


def conversation_frame(conversation: Conversation, *, for_agent: bool = False) -> dict[str, Any]:
    return {"type": "conversation", "conversation": conversation_object(conversation, for_agent=for_agent)}


def notification_frame(kind: str, conversation_id: int) -> dict[str, Any]:
    return {"type": "notification", "kind": kind, "conversation_id": conversation_id}


def agent_frame(agent, now=None, used: int | None = None) -> dict[str, Any]:
    """An addition to the protocol (docs/protocol.md): an agent's presence or capacity changed."""
    return {"type": "agent", "agent": agent_object(agent, now, used)}


def typing_frame(conversation_id: int, sender: str) -> dict[str, Any]:
    return {"type": "typing", "conversation_id": conversation_id, "sender": sender}


# --- Broadcasting ---------------------------------------------------------------------------------


def publish_now(groups: Iterable[str], frame: dict[str, Any]) -> None:
    """Send a frame to channel-layer groups. The layer is not a delivery guarantee:
    clients fill gaps from the database by ``seq`` (docs/protocol.md).

    The frame is handed to an event loop's publisher and this returns at once: the database
    thread goes on with its next piece of work instead of waiting for Redis. The publisher sends
    frames in the order they were handed over (the order of the commits), everything pending in
    one round trip. Inside the ASGI server (a sync function called from the event loop, as
    consumers and views do) that is the server's loop; elsewhere (Celery, management commands,
    sync tests) this process's broadcast loop, which ``flush`` waits for (after each Celery
    task and at exit)."""
    publish_event_now(groups, {"type": "broadcast", "frame": frame})


def publish_event_now(groups: Iterable[str], message: dict[str, Any]) -> None:
    """``publish_now`` of a channel-layer event of any type (``broadcast`` carries a frame)."""
    layer = get_channel_layer()
    if layer is None:
        return
    groups = list(dict.fromkeys(groups))
    loop = _server_loop() or _background_loop()
    loop.call_soon_threadsafe(_publish_later, layer, groups, message)


def flush(timeout: float | None = None) -> None:
    """Wait until this process's broadcast loop has sent every frame handed to it (the end of a
    Celery task, the exit of a command). Frames sent from the server's own loop need none."""
    if _background is None or _background[0] != os.getpid():
        return
    future = asyncio.run_coroutine_threadsafe(_drained(), _background[1])
    try:
        future.result(timeout=timeout or SEND_TIMEOUT)
    except Exception:
        future.cancel()
        logger.warning("frames still unsent after %s s", timeout or SEND_TIMEOUT, exc_info=True)


async def _drained() -> None:
    publisher = _publishers.get(asyncio.get_running_loop())
    while publisher is not None and publisher.task is not None:
        await asyncio.shield(publisher.task)


SEND_TIMEOUT = 10.0
_background: tuple[int, asyncio.AbstractEventLoop] | None = None
_background_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    """This process's broadcast loop, in a daemon thread (started again after a fork)."""
    global _background
    with _background_lock:
        if _background is None or _background[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="broadcast-loop", daemon=True).start()
            _background = (os.getpid(), loop)
            atexit.register(flush)
        return _background[1]


async def _send_batch(layer, sends: list[tuple[list[str], dict[str, Any]]]) -> None:
    """Frames in order, each to its groups: one script call where the layer can
    (omnichannel.realtime.layers), else one group_send after the other."""
    if hasattr(layer, "group_send_many"):
        await layer.group_send_many(sends)
        return
    for groups, message in sends:
        for group in groups:
            await layer.group_send(group, message)


def _server_loop() -> asyncio.AbstractEventLoop | None:
    """The server's event loop whose socket or request this thread works for (the real-time
    stack sets it: omnichannel.realtime.serverloop), if any."""
    try:
        asyncio.get_running_loop()
        return None  # called on the loop itself: no thread to free
    except RuntimeError:
        pass
    return server_loop()


class _Publisher:
    """One per event loop: frames waiting to be sent, and the task that sends them."""

    def __init__(self, layer) -> None:
        self.layer = layer
        self.pending: list[tuple[list[str], dict[str, Any]]] = []
        self.task: asyncio.Task | None = None

    def add(self, groups: list[str], message: dict[str, Any]) -> None:
        self.pending.append((groups, message))
        if self.task is None:
            self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                try:
                    await _send_batch(self.layer, batch)
                except Exception:
                    logger.warning("broadcast of %d frames failed", len(batch), exc_info=True)
        finally:
            self.task = None


_publishers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _publish_later(layer, groups: list[str], message: dict[str, Any]) -> None:
    """On the loop: queue the frame behind those handed over before it."""
    loop = asyncio.get_running_loop()
    publisher = _publishers.get(loop)
    if publisher is None or publisher.layer is not layer:
        publisher = _publishers[loop] = _Publisher(layer)
    publisher.add(groups, message)


def publish_on_commit(groups: Iterable[str], frame: dict[str, Any]) -> None:
    groups = list(groups)
    transaction.on_commit(lambda: publish_now(groups, frame))


def _message_sends(message: Message) -> list[tuple[list[str], dict[str, Any]]]:
    """Who gets which frame of a message: an internal note only the agents' groups; any other
    message the customer too, in one frame while both numberings agree (a conversation without
    notes, nearly all of them), else each side its own."""
    conversation = message.conversation
    agents = [SUPERVISORS_GROUP]
    if conversation.agent_id:
        agents.append(agent_group(conversation.agent_id))
    if message.internal:
        return [(agents, message_frame(message, for_agent=True))]
    customer = customer_group(conversation.customer_id, conversation.workstream_id)
    if message.seq == message.customer_seq:
        return [([customer, *agents], message_frame(message))]
    return [([customer], message_frame(message)), (agents, message_frame(message, for_agent=True))]


def publish_message(message: Message) -> None:
    for groups, frame in _message_sends(message):
        publish_on_commit(groups, frame)


def publish_message_now(message: Message) -> None:
    """On the server's event loop, a message its statement has committed already (the
    one-statement path of conversations.services): to this loop's publisher, now."""
    layer = get_channel_layer()
    if layer is not None:
        for groups, frame in _message_sends(message):
            _publish_later(layer, groups, {"type": "broadcast", "frame": frame})


def publish_conversation(
    conversation: Conversation, *, previous_agent_id: int | None = None, to_customer: bool = True
) -> None:
    """A status or agent change: the customer, the agent(s) involved, the queue's pickers
    and supervisors each get the frame meant for them. ``to_customer=False`` for a change
    only agents see (labels)."""
    if to_customer:
        publish_on_commit(
            [customer_group(conversation.customer_id, conversation.workstream_id)], conversation_frame(conversation)
        )
    agent_groups = [SUPERVISORS_GROUP]
    for agent_id in (conversation.agent_id, previous_agent_id):
        if agent_id:
            agent_groups.append(agent_group(agent_id))
    if conversation.workstream.distribution_mode == DistributionMode.PICK:
        agent_groups.append(queue_group(conversation.queue_id))
    publish_on_commit(agent_groups, conversation_frame(conversation, for_agent=True))


def csat_request_frame(conversation_id: int) -> dict[str, Any]:
    return {"type": "csat.request", "conversation_id": conversation_id}


def publish_csat_request(conversation: Conversation) -> None:
    """After the commit, ask the customer's sockets for a rating of the conversation."""
    publish_on_commit(
        [customer_group(conversation.customer_id, conversation.workstream_id)], csat_request_frame(conversation.pk)
    )


def publish_agent(agent, now=None, used: int | None = None) -> None:
    publish_on_commit([agent_group(agent.pk), SUPERVISORS_GROUP], agent_frame(agent, now, used))


def queue_frame(queue_id: int, waiting: int) -> dict[str, Any]:
    """An addition to the protocol (docs/protocol.md): how many customers wait for an agent in a queue."""
    return {"type": "queue", "queue_id": queue_id, "waiting": waiting}


def publish_queue_waiting_now(queue_ids: Iterable[int]) -> None:
    counts = waiting_counts(queue_ids)
    for queue_id, waiting in counts.items():
        publish_now([queue_group(queue_id), SUPERVISORS_GROUP], queue_frame(queue_id, waiting))


def publish_queue_waiting(queue_ids: Iterable[int]) -> None:
    """After the commit, tell the queues' agents how many customers wait there now (counted
    then, so frames that cross each other still end on the right number)."""
    ids = sorted({int(pk) for pk in queue_ids if pk})
    if ids:
        transaction.on_commit(lambda: publish_queue_waiting_now(ids))


def publish_notification(agent_id: int, kind: str, conversation_id: int) -> None:
    publish_on_commit([agent_group(agent_id)], notification_frame(kind, conversation_id))


def publish_access_revoked(user_id: int, credential: list | None = None) -> None:
    """After the commit, the user's agent sockets opened with ``credential`` (``["session",
    <session key>]`` or ``["token", <token id>]``), or all of them (``None``), close with 4401:
    the user logged out, was deactivated or deleted, lost its agent profile, or the token was
    deleted (agents.signals)."""
    message = {"type": "access.revoked", "credential": credential}
    transaction.on_commit(lambda: publish_event_now([user_group(user_id)], message))
