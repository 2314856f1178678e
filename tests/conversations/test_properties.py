"""Property-based: random sequences of everything people and the system do (start, message,
wait, return, resume, end, close, the customer's end, presence, transfer, pick, drain, and time
passing with the minute sweep) keep the engine's invariants after every step."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from django.db import transaction
from django.db.models import Count, Max, Min
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.models import Agent, Presence
from conversations import services
from conversations.errors import DomainError
from conversations.models import TRANSITIONS, Conversation, Customer, Message, Status
from conversations.services import queues_drain
from conversations.tasks import sweep_task
from tests.factories import (
    AgentFactory,
    AuthenticationSettingFactory,
    ChatWidgetFactory,
    CustomerFactory,
    QueueFactory,
    WorkstreamFactory,
)

ACTIONS = [
    "customer_says",
    "agent_says",
    "wait",
    "resume",
    "end",
    "close",
    "customer_end",
    "presence",
    "transfer_agent",
    "transfer_queue",
    "drain",
    "pick",
    "customer_leaves",
    "time_passes",
]
# Customers write more often than anything else happens, so queues fill and agents fill up.
WEIGHTED_ACTIONS = ["customer_says"] * 5 + ACTIONS
# Long enough, across steps, for every timeout of the engine: disconnect grace, open and wrap-up
# auto-close, affinity, waiting auto-close.
TIME_STEPS = [timedelta(minutes=2), timedelta(minutes=25), timedelta(hours=2), timedelta(days=3), timedelta(days=31)]


def world():
    queue, other_queue = QueueFactory(name="Q1"), QueueFactory(name="Q2")
    setting = AuthenticationSettingFactory()
    widgets = [
        ChatWidgetFactory(
            workstream=WorkstreamFactory(queue=queue, capacity_units=40, persistent_mode=True),
            authentication_setting=setting,
        ),
        ChatWidgetFactory(workstream=WorkstreamFactory(queue=queue, capacity_units=30)),
        ChatWidgetFactory(workstream=WorkstreamFactory(queue=other_queue, capacity_units=50, distribution_mode="pick")),
    ]
    # Uneven, tight capacities and more conversations than fit: assignment must hold back.
    agents = [AgentFactory(capacity=capacity, presence=Presence.AVAILABLE) for capacity in (100, 70, 60)]
    queue.agents.add(*agents[:2])
    other_queue.agents.add(*agents[1:])
    customers = [CustomerFactory(authentication_setting=setting) for _ in range(4)]
    customers += [CustomerFactory(authentication_setting=None, widget=widgets[i % 2 + 1]) for i in range(4)]
    return widgets, agents, customers, [queue, other_queue]


def widget_for(customer: Customer, widgets):
    return widgets[0] if customer.authentication_setting_id else customer.widget


def check_invariants(before: dict[int, str], exempt: set[int]) -> dict[int, str]:
    now_statuses = dict(Conversation.objects.values_list("pk", "status"))
    for pk, status in now_statuses.items():
        old = before.get(pk)
        assert old is None or status == old or status in TRANSITIONS[old], (pk, old, status)
    for agent in Agent.objects.all():
        units = sum(
            c.workstream.capacity_units
            for c in Conversation.objects.filter(agent=agent, status__in=[Status.ACTIVE, Status.WRAP_UP])
            .select_related("workstream")
            .exclude(pk__in=exempt)
        )
        assert units <= agent.capacity, (agent.pk, units)
    rows = Message.objects.values("conversation_id").annotate(n=Count("pk"), lo=Min("seq"), hi=Max("seq"))
    for row in rows:
        assert (row["lo"], row["hi"]) == (1, row["n"]), row
    for conversation in Conversation.objects.all():
        assert conversation.last_seq == conversation.messages.count()
    return now_statuses


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(data=st.data())
def test_random_sequences_keep_capacity_transitions_and_seq_invariants(db, data):
    with transaction.atomic(), time_machine.travel("2026-03-02 09:00:00+00:00", tick=False) as clock:
        widgets, agents, customers, queues = world()
        statuses: dict[int, str] = {}
        exempt: set[int] = set()  # over capacity through affinity or the agent's own choice
        for _ in range(data.draw(st.integers(5, 40), label="steps")):
            action = data.draw(st.sampled_from(WEIGHTED_ACTIONS), label="action")
            customer = data.draw(st.sampled_from(customers), label="customer")
            agent = data.draw(st.sampled_from(agents), label="agent")
            conversations = list(Conversation.objects.exclude(status=Status.CLOSED).order_by("pk"))
            conversation = data.draw(st.sampled_from(conversations), label="conv") if conversations else None
            try:
                if action == "customer_says":
                    result = services.customer_message_send(
                        widget=widget_for(customer, widgets), customer=customer, body="hello"
                    )
                    if statuses.get(result.conversation.pk) == Status.WAITING:
                        exempt.add(result.conversation.pk)
                elif action == "drain":
                    queues_drain()
                elif action == "presence":
                    presence = data.draw(st.sampled_from(Presence.values), label="presence")
                    services.agent_presence_set(agent=agent, presence=presence)
                elif action == "customer_leaves":
                    services.customer_connect(customer=customer)
                    services.customer_disconnect(customer=customer)
                elif action == "time_passes":
                    clock.shift(data.draw(st.sampled_from(TIME_STEPS), label="time"))
                    sweep_task()  # auto-close, disconnect grace, affinity timeouts, presence, drain
                elif conversation is None:
                    pass
                elif action == "agent_says":
                    services.agent_message_send(
                        conversation_id=conversation.pk, agent=conversation.agent or agent, body="hi"
                    )
                    if conversation.status == Status.WAITING:
                        exempt.add(conversation.pk)
                elif action == "wait":
                    services.conversation_wait(conversation_id=conversation.pk, agent=conversation.agent or agent)
                elif action == "resume":
                    services.conversation_resume(conversation_id=conversation.pk, agent=conversation.agent or agent)
                    exempt.add(conversation.pk)
                elif action == "end":
                    services.conversation_end(conversation_id=conversation.pk, agent=conversation.agent or agent)
                    if conversation.status == Status.WAITING:  # its wrap-up: the agent's own choice
                        exempt.add(conversation.pk)
                elif action == "close":
                    services.conversation_close(conversation_id=conversation.pk, agent=conversation.agent or agent)
                elif action == "customer_end":
                    services.customer_conversation_end(
                        widget=widget_for(conversation.customer, widgets), customer=conversation.customer
                    )
                elif action == "transfer_agent":
                    services.conversation_transfer(
                        conversation_id=conversation.pk, agent=conversation.agent or agent, to_agent=agent
                    )
                    exempt.discard(conversation.pk)
                elif action == "transfer_queue":
                    queue = data.draw(st.sampled_from(queues), label="queue")
                    services.conversation_transfer(
                        conversation_id=conversation.pk, agent=conversation.agent or agent, to_queue=queue
                    )
                elif action == "pick":
                    services.conversation_pick(conversation_id=conversation.pk, agent=agent)
            except DomainError:
                pass  # refused with a typed error: fine, the invariants must still hold
            exempt &= set(
                Conversation.objects.filter(status__in=[Status.ACTIVE, Status.WRAP_UP]).values_list("pk", flat=True)
            )
            statuses = check_invariants(statuses, exempt)
            if data.draw(st.booleans(), label="the system drains"):  # as it does after most commits
                queues_drain()
                statuses = check_invariants(statuses, exempt)
        transaction.set_rollback(True)
