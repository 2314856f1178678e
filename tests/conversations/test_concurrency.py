"""Races, on PostgreSQL: concurrent workers and agents never break the engine's promises.
(SQLite serialises writers, so these only prove something on PostgreSQL; CI runs them.)"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection, connections

from agents.models import Presence
from conversations import services
from conversations.errors import NotFound
from conversations.models import Conversation, Message, Status
from conversations.selectors import capacity_used
from conversations.services import queue_drain
from tests.factories import AgentFactory, ChatWidgetFactory, CustomerFactory, QueueFactory, WorkstreamFactory
from workstreams.models import DistributionMode

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_concurrently(functions, *, timeout: float = 60) -> list:
    """Start every function at once (barrier), each on its own thread and DB connection."""
    barrier = threading.Barrier(len(functions))
    results: list = [None] * len(functions)

    def worker(index, function):
        try:
            barrier.wait()
            results[index] = function()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i, f)) for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a worker hung (deadlock?)"
    return results


def test_database_is_postgresql():
    assert connection.vendor == "postgresql"


def test_concurrent_workers_never_over_assign_an_agent_or_assign_a_conversation_twice():
    queue = QueueFactory()
    widget = ChatWidgetFactory(workstream=WorkstreamFactory(queue=queue, capacity_units=30))
    agents = [AgentFactory(presence=Presence.AVAILABLE, capacity=100) for _ in range(5)]
    queue.agents.add(*agents)
    Conversation.objects.all().delete()  # the queue membership signal found nothing anyway
    for _ in range(40):
        customer = CustomerFactory(authentication_setting=None, widget=widget)
        services.customer_message_send(widget=widget, customer=customer, body="hi")
    Conversation.objects.filter(status=Status.ACTIVE).update(status=Status.OPEN, agent=None)  # start from a full queue
    Message.objects.filter(kind="agent_joined").delete()

    results = run_concurrently([lambda: queue_drain(queue_id=queue.pk)] * 4)
    assert not [r for r in results if isinstance(r, BaseException)], results

    used = capacity_used([a.pk for a in agents])
    assert all(units <= 100 for units in used.values()), used
    assert sum(used.values()) == 5 * 3 * 30  # every agent filled to 3 conversations
    assert Conversation.objects.filter(status=Status.ACTIVE).count() == 15
    joined = Counter(Message.objects.filter(kind="agent_joined").values_list("conversation_id", flat=True))
    assert set(joined.values()) == {1}, "a conversation was assigned twice"


def test_two_agents_picking_the_same_conversation_one_wins_the_other_gets_not_found():
    """The loser finds it picked by the other agent: not its own, so it does not exist for it."""
    queue = QueueFactory()
    widget = ChatWidgetFactory(workstream=WorkstreamFactory(queue=queue, distribution_mode=DistributionMode.PICK))
    alice, bob = AgentFactory(capacity=1000), AgentFactory(capacity=1000)
    queue.agents.add(alice, bob)
    for _ in range(10):
        customer = CustomerFactory(authentication_setting=None, widget=widget)
        conversation = services.customer_message_send(widget=widget, customer=customer, body="hi").conversation
        results = run_concurrently(
            [
                lambda agent=agent, pk=conversation.pk: services.conversation_pick(conversation_id=pk, agent=agent)
                for agent in (alice, bob)
            ]
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], NotFound), results
        assert Message.objects.filter(conversation=conversation, kind="agent_joined").count() == 1


def test_concurrent_messages_get_gapless_unique_seq_numbers():
    queue = QueueFactory()
    widget = ChatWidgetFactory(workstream=WorkstreamFactory(queue=queue, persistent_mode=True))
    agent = AgentFactory(capacity=1000)
    customer = CustomerFactory(authentication_setting=widget.authentication_setting)
    conversation = services.customer_message_send(widget=widget, customer=customer, body="start").conversation
    services.conversation_assign(conversation_id=conversation.pk, agent=agent)
    before = Message.objects.filter(conversation=conversation).count()

    def customer_burst(n):
        return lambda: [
            services.customer_message_send(widget=widget, customer=customer, body=f"c{n}-{i}", client_id=f"c{n}-{i}")
            for i in range(20)
        ]

    def agent_burst(n):
        return lambda: [
            services.agent_message_send(conversation_id=conversation.pk, agent=agent, body=f"a{n}-{i}")
            for i in range(20)
        ]

    results = run_concurrently([customer_burst(n) for n in range(3)] + [agent_burst(n) for n in range(3)])
    assert not [r for r in results if isinstance(r, BaseException)], results
    seqs = list(Message.objects.filter(conversation=conversation).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) == before + 6 * 20
    conversation.refresh_from_db()
    assert conversation.last_seq == len(seqs)


def test_concurrent_first_messages_of_one_customer_start_one_conversation():
    widget = ChatWidgetFactory(workstream=WorkstreamFactory(persistent_mode=True))
    customer = CustomerFactory(authentication_setting=widget.authentication_setting)
    results = run_concurrently(
        [lambda i=i: services.customer_message_send(widget=widget, customer=customer, body=f"hi {i}") for i in range(6)]
    )
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert Conversation.objects.filter(customer=customer).count() == 1
    assert len({r.conversation.pk for r in results}) == 1


def test_resending_the_same_client_id_concurrently_stores_one_message():
    widget = ChatWidgetFactory(workstream=WorkstreamFactory(persistent_mode=True))
    customer = CustomerFactory(authentication_setting=widget.authentication_setting)
    services.customer_message_send(widget=widget, customer=customer, body="first")
    results = run_concurrently(
        [
            lambda: services.customer_message_send(widget=widget, customer=customer, body="again", client_id="same")
            for _ in range(5)
        ]
    )
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert Message.objects.filter(client_id="same").count() == 1
    assert sum(r.created for r in results) == 1


def test_a_drain_waits_for_a_conversation_another_transaction_holds_instead_of_leaving_it_queued():
    """A customer writing into an open conversation holds its row lock; a drain that runs at
    that moment must still assign it, not leave it to the minute sweep."""
    queue = QueueFactory()
    widget = ChatWidgetFactory(workstream=WorkstreamFactory(queue=queue, capacity_units=30))
    agent = AgentFactory(presence=Presence.OFFLINE, capacity=100)
    queue.agents.add(agent)
    customer = CustomerFactory(authentication_setting=None, widget=widget)
    services.customer_message_send(widget=widget, customer=customer, body="hi")  # nobody online: stays open
    conversation = Conversation.objects.get(customer=customer)
    assert conversation.status == Status.OPEN
    type(agent).objects.filter(pk=agent.pk).update(presence=Presence.AVAILABLE)  # setup, no drain of its own
    locked = threading.Event()
    release = threading.Event()

    def hold_the_row():
        from django.db import transaction

        with transaction.atomic():
            Conversation.objects.select_for_update().get(pk=conversation.pk)
            locked.set()
            release.wait(10)

    def drain_while_held():
        locked.wait(10)
        threading.Timer(0.5, release.set).start()
        return queue_drain(queue_id=queue.pk)

    assert run_concurrently([hold_the_row, drain_while_held]) == [None, 1]
    conversation.refresh_from_db()
    assert conversation.status == Status.ACTIVE
    assert conversation.agent_id == agent.pk


def test_two_drains_at_once_spread_conversations_by_highest_free_capacity():
    """Two workers assigning at the same moment still rank agents with each other's
    assignments counted: two conversations, two equal agents, one each."""
    queue = QueueFactory()
    widget = ChatWidgetFactory(workstream=WorkstreamFactory(queue=queue, capacity_units=50))
    agents = [AgentFactory(presence=Presence.OFFLINE, capacity=100) for _ in range(2)]
    queue.agents.add(*agents)
    for _ in range(2):
        customer = CustomerFactory(authentication_setting=None, widget=widget)
        services.customer_message_send(widget=widget, customer=customer, body="hi")
    type(agents[0]).objects.filter(pk__in=[a.pk for a in agents]).update(presence=Presence.AVAILABLE)

    for _ in range(5):
        Conversation.objects.update(status=Status.OPEN, agent=None)
        results = run_concurrently([lambda: queue_drain(queue_id=queue.pk), lambda: queue_drain(queue_id=queue.pk)])
        assert sum(results) == 2
        assert Counter(Conversation.objects.values_list("agent_id", flat=True)) == {a.pk: 1 for a in agents}
