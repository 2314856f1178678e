"""One rule, two executors: every state a message can meet, sent once from a socket (the engine's
executor on the event loop, then the full path when the rule says so) and once through the full
path alone, writes the same rows and sends the same frames. PostgreSQL only (SQLite has no
executor on the loop)."""

from __future__ import annotations

import asyncio
from typing import NamedTuple

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from agents.models import Presence
from conversations import realtime, services
from conversations.errors import DomainError, NotFound
from conversations.models import Conversation, Message, Status
from tests.factories import (
    AgentFactory,
    AuthenticationSettingFactory,
    ChatWidgetFactory,
    CustomerFactory,
    QueueFactory,
    WorkstreamFactory,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

MESSAGE_FIELDS = ("seq", "customer_seq", "sender", "author", "kind", "body", "client_id")
CONVERSATION_FIELDS = ("status", "last_seq", "customer_last_seq", "agent_read_seq", "offline_notified")


class Twin(NamedTuple):
    """A workstream of its own (queue, persistent widget, agent Alice, customer Carol): two twins
    start equal, so what a message does in one it does in the other."""

    widget: object
    alice: object
    customer: object

    @property
    def groups(self) -> list[str]:
        return [f"customer.{self.customer.pk}.{self.widget.workstream_id}", f"agent.{self.alice.pk}", "supervisors"]


def twin() -> Twin:
    queue = QueueFactory()
    alice = AgentFactory(user__first_name="Alice", presence=Presence.AVAILABLE, capacity=100)
    queue.agents.add(alice)
    widget = ChatWidgetFactory(
        workstream=WorkstreamFactory(queue=queue, capacity_units=50, persistent_mode=True),
        authentication_setting=AuthenticationSettingFactory(),
    )
    customer = CustomerFactory(authentication_setting=widget.authentication_setting, display_name="Carol")
    return Twin(widget, alice, customer)


def into(state: str, twin: Twin) -> Conversation | None:
    """The twin's conversation, put in ``state``."""
    widget, alice, customer = twin
    if state == "none":
        return None
    if state in ("open", "another_agents"):
        services.agent_presence_set(agent=alice, presence=Presence.OFFLINE)
        if state == "another_agents":
            widget.workstream.queue.agents.add(
                AgentFactory(user__first_name="Bob", presence=Presence.AVAILABLE, capacity=100)
            )
    conversation = services.customer_message_send(widget=widget, customer=customer, body="Hello").conversation
    conversation.refresh_from_db()
    if state == "open":
        assert conversation.status == Status.OPEN
        return conversation
    if state == "another_agents":
        assert conversation.status == Status.ACTIVE and conversation.agent_id != alice.pk
        return conversation
    assert (conversation.status, conversation.agent_id) == (Status.ACTIVE, alice.pk)
    if state == "waiting":
        services.conversation_wait(conversation_id=conversation.pk, agent=alice)
    if state == "returned":
        Conversation.objects.filter(pk=conversation.pk).update(returned_at=timezone.now())
    if state == "noted":  # active, after an internal note: the two numberings differ from now on
        services.agent_message_send(conversation_id=conversation.pk, agent=alice, body="For agents", internal=True)
    if state in ("wrap_up", "closed"):
        services.conversation_end(conversation_id=conversation.pk, agent=alice)
    if state == "closed":
        services.conversation_close(conversation_id=conversation.pk, agent=alice)
    conversation.refresh_from_db()
    return conversation


def normalized(value):
    """A frame without what differs between two conversations: ids and times."""
    if isinstance(value, dict):
        return {
            key: normalized(item)
            for key, item in value.items()
            if key not in ("id", "queue", "workstream") and not key.endswith("_id") and not key.endswith("_at")
        }
    if isinstance(value, list):
        return [normalized(item) for item in value]
    return value


async def frames_of(groups: list[str], send) -> tuple[object, list]:
    """What ``send()`` returned (or raised), and the frames these groups received meanwhile."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    for group in groups:
        await layer.group_add(group, channel)
    await asyncio.sleep(0.1)  # the subscriptions are in place
    try:
        outcome = await send()
    except DomainError as error:
        outcome = type(error)
    frames = []
    while True:
        try:
            event = await asyncio.wait_for(layer.receive(channel), 0.5)
        except TimeoutError:
            break
        frames.append(normalized(event.get("frame", event)))
    for group in groups:
        await layer.group_discard(group, channel)
    return outcome, frames


@sync_to_async
def stored(twin: Twin):
    conversations = list(Conversation.objects.filter(customer=twin.customer).order_by("pk"))
    return (
        [
            {name: getattr(c, name) for name in CONVERSATION_FIELDS} | {"alice": c.agent_id == twin.alice.pk}
            for c in conversations
        ],
        [
            {name: getattr(m, name) for name in MESSAGE_FIELDS} | {"alice": m.agent_id == twin.alice.pk}
            for m in Message.objects.filter(conversation__in=conversations).order_by("conversation_id", "seq")
        ],
    )


@pytest.fixture
def twins(db):
    return sync_to_async(twin)


def outcome(result) -> str:
    return result.__name__ if isinstance(result, type) else "sent"


@pytest.mark.parametrize("state", ["none", "open", "active", "noted", "waiting", "wrap_up", "closed"])
async def test_a_customer_message_writes_and_sends_the_same_on_both_paths(state, twins):
    socket_side, engine_side = await twins(), await twins()
    for side in (socket_side, engine_side):
        await sync_to_async(into)(state, side)
    await asyncio.sleep(0.3)  # the setup's frames are out

    socket = await frames_of(
        socket_side.groups,
        lambda: realtime.acustomer_message_send(
            widget=realtime.WidgetRef.of(socket_side.widget),
            customer=realtime.CustomerRef.of(socket_side.customer),
            body=" Hi ",
            client_id="c-1",
        ),
    )
    engine = await frames_of(
        engine_side.groups,
        lambda: sync_to_async(services.customer_message_send)(
            widget=engine_side.widget, customer=engine_side.customer, body=" Hi ", client_id="c-1"
        ),
    )

    assert await stored(socket_side) == await stored(engine_side)
    assert socket[1] == engine[1] and socket[1]  # the frames, in order
    assert outcome(socket[0]) == outcome(engine[0]) == "sent"


@pytest.mark.parametrize(
    "state", ["active", "noted", "returned", "waiting", "open", "wrap_up", "closed", "another_agents"]
)
async def test_an_agent_message_writes_and_sends_the_same_on_both_paths(state, twins):
    socket_side, engine_side = await twins(), await twins()
    socket_conversation = await sync_to_async(into)(state, socket_side)
    engine_conversation = await sync_to_async(into)(state, engine_side)
    await asyncio.sleep(0.3)

    socket = await frames_of(
        socket_side.groups,
        lambda: realtime.aagent_message_send(
            conversation_id=socket_conversation.pk, agent=socket_side.alice, body="Answer", client_id="a-1"
        ),
    )
    engine = await frames_of(
        engine_side.groups,
        lambda: sync_to_async(services.agent_message_send)(
            conversation_id=engine_conversation.pk, agent=engine_side.alice, body="Answer", client_id="a-1"
        ),
    )

    assert await stored(socket_side) == await stored(engine_side)
    assert socket[1] == engine[1]
    refused = {"open": "NotFound", "another_agents": "NotFound", "wrap_up": "InvalidTransition"}
    expected = refused.get(state, "InvalidTransition" if state == "closed" else "sent")
    assert outcome(socket[0]) == outcome(engine[0]) == expected
    assert bool(socket[1]) == (expected == "sent")


async def test_a_customer_renamed_while_connected_writes_under_the_new_name(twins):
    carol = await twins()
    await sync_to_async(into)("active", carol)
    held = realtime.CustomerRef.of(carol.customer)  # what the socket keeps from its authentication
    carol.customer.display_name = "Caroline"
    await sync_to_async(carol.customer.save)(update_fields=["display_name"])

    result = await realtime.acustomer_message_send(widget=realtime.WidgetRef.of(carol.widget), customer=held, body="Hi")
    assert result.message.author == "Caroline"
    assert (await Message.objects.aget(pk=result.message.pk)).author == "Caroline"


async def test_a_widget_moved_to_another_workstream_is_not_found_on_the_socket(twins):
    carol = await twins()
    conversation = await sync_to_async(into)("active", carol)
    held = realtime.WidgetRef.of(carol.widget)
    elsewhere = await twins()
    carol.widget.workstream = elsewhere.widget.workstream
    await sync_to_async(carol.widget.save)(update_fields=["workstream"])

    with pytest.raises(NotFound):
        await realtime.acustomer_message_send(widget=held, customer=realtime.CustomerRef.of(carol.customer), body="Hi")
    assert await Message.objects.filter(conversation=conversation).acount() == conversation.last_seq


@pytest.mark.parametrize(
    ("display_name", "email", "external_id"),
    [("", "carol@example.com", "c-1"), ("", "", "visitor-1234567890"), ("Carol", "carol@example.com", "c-2")],
    ids=["email only", "neither", "name"],
)
async def test_a_customers_message_is_authored_by_the_same_name_on_both_paths(twins, display_name, email, external_id):
    """``Customer.name`` (the name, else the email, else "Visitor <id>"): the loop's statement
    writes it from the row as the full path does."""
    authors = []
    for path in ("loop", "full"):
        carol = await twins()
        carol.customer.display_name, carol.customer.email = display_name, email
        carol.customer.external_id = external_id  # each twin has its own authentication setting
        await sync_to_async(carol.customer.save)()
        await sync_to_async(into)("active", carol)
        held = realtime.CustomerRef.of(carol.customer)
        if path == "loop":
            result = await services.acustomer_message_append(
                widget_id=carol.widget.pk,
                workstream_id=carol.widget.workstream_id,
                customer_id=held.pk,
                body="Hi",
            )
        else:
            result = await sync_to_async(services.customer_message_send)(
                widget=carol.widget, customer=carol.customer, body="Hi"
            )
        assert result is not None
        authors.append((await Message.objects.aget(pk=result.message.pk)).author)
        assert result.message.author == authors[-1]
    assert authors[0] == authors[1] == (display_name or email or f"Visitor {external_id[:8]}")
