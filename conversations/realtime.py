"""The engine's entry points for the sockets (conversations.consumers, agents.consumers).

A socket keeps ids, not model instances (``WidgetRef``, ``CustomerRef``), and reads them again
(``resolve``) where the configuration matters. A message from a socket takes the one statement
of the engine (``services.messages._message_statement``) when the conversation is active, and
otherwise the engine's full path on a frame thread (omnichannel.dbthreads), called through the
``conversations.services`` package as every adapter calls the engine.
"""

from __future__ import annotations

from typing import NamedTuple

from agents.models import Agent
from conversations import services
from conversations.authentication import get_widget
from conversations.errors import NotFound
from conversations.models import Customer, Sender
from conversations.services import MAX_ID, SendResult, clean_body, clean_client_id
from conversations.services.messages import _message_statement
from omnichannel import asyncdb
from omnichannel.dbthreads import frame_sync_to_async
from workstreams.models import ChatWidget


class WidgetRef(NamedTuple):
    """What a customer's socket keeps of its widget between frames (conversations.consumers):
    ids, not the widget with its workstream, queue, hours and authentication setting (six model
    instances per socket). Where the configuration matters (the full message path, which may
    start a conversation, and the customer's end) ``resolve`` reads the widget again, so a change
    made in the admin applies to a connected customer's next conversation."""

    pk: int
    widget_key: str
    workstream_id: int

    @classmethod
    def of(cls, widget: ChatWidget) -> WidgetRef:
        return cls(widget.pk, widget.widget_key, widget.workstream_id)


class CustomerRef(NamedTuple):
    """What a customer's socket keeps of the customer: the id, and the name its messages carry."""

    pk: int
    name: str

    @classmethod
    def of(cls, customer: Customer) -> CustomerRef:
        return cls(customer.pk, str(customer.name))


def resolve(widget: ChatWidget | WidgetRef, customer: Customer | CustomerRef) -> tuple[ChatWidget, Customer]:
    """The widget and the customer as stored now, for what a socket holds; instances pass
    through. ``NotFound`` when either is gone (deleted, erased), or when the widget now belongs
    to another workstream: the socket's groups are those of the old one, so it would not see
    the new conversation (the client reconnects)."""
    if not isinstance(widget, ChatWidget):
        ref = widget
        widget = get_widget(pk=ref.pk)
        if widget.workstream_id != ref.workstream_id:
            raise NotFound()
    if not isinstance(customer, Customer):
        found = Customer.objects.filter(pk=customer.pk).first()
        if found is None:
            raise NotFound()
        customer = found
    return widget, customer


async def acustomer_message_send(
    *, widget: ChatWidget | WidgetRef, customer: Customer | CustomerRef, body: object, client_id: object = None
) -> SendResult:
    """``customer_message_send`` for a consumer: one statement when the conversation is active;
    otherwise the full path, with the widget and the customer read again (``resolve``)."""
    body = clean_body(body)
    client_id = clean_client_id(client_id)
    if asyncdb.enabled():
        params = {"customer": customer.pk, "workstream": widget.workstream_id, "agent": None, "author": customer.name}
        result = await _message_statement(Sender.CUSTOMER, params, body, client_id)
        if result is not None:
            return result
    return await frame_sync_to_async(_resolved_customer_message_send)(widget, customer, body, client_id)


def _resolved_customer_message_send(
    widget: ChatWidget | WidgetRef, customer: Customer | CustomerRef, body: str, client_id: str | None
) -> SendResult:
    widget, customer = resolve(widget, customer)
    return services.customer_message_send(widget=widget, customer=customer, body=body, client_id=client_id)


def resolved_customer_conversation_end(*, widget: ChatWidget | WidgetRef, customer: Customer | CustomerRef):
    """``customer_conversation_end`` for a socket, with the widget and the customer read again."""
    widget, customer = resolve(widget, customer)
    return services.customer_conversation_end(widget=widget, customer=customer)


async def aagent_message_send(
    *, conversation_id: int, agent: Agent, body: object, client_id: object = None
) -> SendResult:
    """``agent_message_send`` for a consumer: one statement when the conversation is active and
    no returning customer waits for this answer."""
    body = clean_body(body)
    client_id = clean_client_id(client_id)
    in_range = isinstance(conversation_id, int) and not isinstance(conversation_id, bool)
    if asyncdb.enabled() and in_range and 0 < conversation_id <= MAX_ID:
        params = {"conversation": conversation_id, "agent": agent.pk, "author": agent.display_name}
        result = await _message_statement(Sender.AGENT, params, body, client_id)
        if result is not None:
            return result
    return await frame_sync_to_async(services.agent_message_send)(
        conversation_id=conversation_id, agent=agent, body=body, client_id=client_id
    )
