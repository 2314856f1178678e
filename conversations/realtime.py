"""The engine's entry points for the sockets (conversations.consumers, agents.consumers).

A socket keeps ids, not model instances (``WidgetRef``, ``CustomerRef``), and reads them again
(``resolve``) where the configuration matters. A message from a socket is offered first to the
engine's executor on the event loop (``services.acustomer_message_append``,
``services.aagent_message_append``), which writes it when it only appends to an active
conversation, and otherwise goes to the engine's full path on a frame thread
(omnichannel.dbthreads). Both apply the same rule (conversations.services.messages).
"""

from __future__ import annotations

from typing import NamedTuple

from agents.models import Agent
from conversations import services
from conversations.customer_tokens import get_widget
from conversations.errors import NotFound
from conversations.models import Customer
from conversations.services import SendResult
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
    """What a customer's socket keeps of the customer: the id. Its name, which its messages
    carry, is read with each message (it may change while the socket is open)."""

    pk: int

    @classmethod
    def of(cls, customer: Customer) -> CustomerRef:
        return cls(customer.pk)


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
    *,
    widget: ChatWidget | WidgetRef,
    customer: Customer | CustomerRef,
    body: object,
    client_id: object = None,
    internal: object = False,
    prechat: object = None,
    attachments: object = None,
) -> SendResult:
    """``customer_message_send`` for a consumer: on the event loop when the message only appends
    (into an active conversation: the pre-chat answers of a start do not apply); otherwise the
    full path, with the widget and the customer read again (``resolve``), which a message with
    attachments always takes (it claims the uploads)."""
    if asyncdb.enabled() and attachments is None:
        result = await services.acustomer_message_append(
            widget_id=widget.pk,
            workstream_id=widget.workstream_id,
            customer_id=customer.pk,
            body=body,
            client_id=client_id,
            internal=internal,
        )
        if result is not None:
            return result
    return await frame_sync_to_async(_resolved_customer_message_send)(
        widget,
        customer,
        {"body": body, "client_id": client_id, "internal": internal, "prechat": prechat, "attachments": attachments},
    )


def _resolved_customer_message_send(
    widget: ChatWidget | WidgetRef, customer: Customer | CustomerRef, frame: dict
) -> SendResult:
    widget, customer = resolve(widget, customer)
    return services.customer_message_send(widget=widget, customer=customer, **frame)


def resolved_customer_conversation_end(*, widget: ChatWidget | WidgetRef, customer: Customer | CustomerRef):
    """``customer_conversation_end`` for a socket, with the widget and the customer read again."""
    widget, customer = resolve(widget, customer)
    return services.customer_conversation_end(widget=widget, customer=customer)


async def aagent_message_send(
    *,
    conversation_id: int,
    agent: Agent,
    body: object,
    client_id: object = None,
    internal: object = False,
    attachments: object = None,
) -> SendResult:
    """``agent_message_send`` for a consumer: on the event loop when the message only appends
    (an internal note or a message with attachments never does: it takes the full path)."""
    if asyncdb.enabled() and attachments is None and not services.clean_internal(internal):
        result = await services.aagent_message_append(
            conversation_id=conversation_id, agent=agent, body=body, client_id=client_id
        )
        if result is not None:
            return result
    return await frame_sync_to_async(services.agent_message_send)(
        conversation_id=conversation_id,
        agent=agent,
        body=body,
        client_id=client_id,
        internal=internal,
        attachments=attachments,
    )
