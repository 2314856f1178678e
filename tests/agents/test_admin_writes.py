"""An agent or a queue edited in the admin changes through the engine: the agent's sockets and
the supervisors hear the agent frame, and the queues drain at once (after the commit), not at
the next minute sweep."""

from __future__ import annotations

import pytest
from django.forms import MultiWidget
from django.urls import reverse

from agents.models import Agent, Presence
from conversations import services
from conversations.events import SUPERVISORS_GROUP, agent_group
from conversations.models import Status
from tests.factories import AgentFactory, CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def queued(persistent, customer):
    """A conversation open in the queue."""
    return services.customer_message_send(widget=persistent, customer=customer, body="hello").conversation


def agent_frames(broadcasts, agent):
    """The agent frames sent to the agent's sockets (each also went to the supervisors)."""
    sent = [(group, frame["agent"]) for group, frame in broadcasts if frame["type"] == "agent"]
    frames = [frame for group, frame in sent if group == agent_group(agent.pk)]
    assert [frame for group, frame in sent if group == SUPERVISORS_GROUP] == frames
    return frames


def agent_form(agent, **changes):
    data = {
        "presence": agent.presence,
        "presence_auto": "on" if agent.presence_auto else "",
        "capacity": agent.capacity,
        "email_notifications": "on" if agent.email_notifications else "",
        "queues": [queue.pk for queue in agent.queues.all()],
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value != ""}


def test_setting_an_agent_available_in_the_admin_sends_the_frame_and_drains_its_queues(
    admin_client, alice, queued, commit, broadcasts
):
    services.agent_presence_set(agent=alice, presence=Presence.OFFLINE)
    services.queues_drain()
    queued.refresh_from_db()
    assert queued.status == Status.OPEN
    broadcasts.clear()
    with commit():
        response = admin_client.post(
            reverse("admin:agents_agent_change", args=[alice.pk]),
            agent_form(alice, presence=Presence.AVAILABLE, presence_auto="on"),
        )
    assert response.status_code == 302
    queued.refresh_from_db()
    assert (queued.status, queued.agent) == (Status.ACTIVE, alice)  # no sweep ran
    frames = agent_frames(broadcasts, alice)
    assert frames and frames[0]["presence"] == Presence.AVAILABLE
    assert frames[-1]["capacity"]["used"] == 50  # then the assignment's


def test_raising_a_capacity_in_the_admin_drains_at_once(admin_client, alice, queued, commit, broadcasts):
    Agent.objects.filter(pk=alice.pk).update(capacity=0)
    alice.refresh_from_db()
    services.queues_drain()
    queued.refresh_from_db()
    assert queued.status == Status.OPEN
    with commit():
        admin_client.post(reverse("admin:agents_agent_change", args=[alice.pk]), agent_form(alice, capacity=100))
    queued.refresh_from_db()
    assert queued.agent == alice
    assert agent_frames(broadcasts, alice)[0]["capacity"]["total"] == 100


def test_saving_an_agent_unchanged_in_the_admin_sends_nothing(admin_client, alice, commit, broadcasts):
    with commit():
        response = admin_client.post(reverse("admin:agents_agent_change", args=[alice.pk]), agent_form(alice))
    assert response.status_code == 302
    assert broadcasts == []


def test_adding_an_agent_with_its_queues_in_the_admin_drains_them(admin_client, queue, queued, commit):
    user = AgentFactory().user
    Agent.objects.filter(user=user).delete()
    with commit():
        response = admin_client.post(
            reverse("admin:agents_agent_add"),
            {
                "user": user.pk,
                "presence": Presence.AVAILABLE,
                "presence_auto": "on",
                "capacity": 100,
                "queues": [queue.pk],
            },
        )
    assert response.status_code == 302
    queued.refresh_from_db()
    assert queued.agent == Agent.objects.get(user=user)


def test_the_user_admins_agent_inline_goes_through_the_engine(admin_client, alice, queued, commit, broadcasts):
    services.agent_presence_set(agent=alice, presence=Presence.AWAY)
    url = reverse("admin:auth_user_change", args=[alice.user.pk])
    data = page_form(admin_client.get(url))
    prefix = next(key for key in data if key.endswith("-0-presence")).removesuffix("-0-presence")
    data[f"{prefix}-0-presence"] = Presence.AVAILABLE
    data[f"{prefix}-0-presence_auto"] = "on"
    broadcasts.clear()
    with commit():
        response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    queued.refresh_from_db()
    assert queued.agent == alice
    assert agent_frames(broadcasts, alice)[0]["presence"] == Presence.AVAILABLE


def test_adding_an_agent_to_a_queue_in_the_queue_admin_drains_it(admin_client, queue, queued, commit):
    newcomer = AgentFactory(presence=Presence.AVAILABLE, capacity=100)
    with commit():
        response = admin_client.post(
            reverse("admin:workstreams_queue_change", args=[queue.pk]),
            {"name": queue.name, "priority": queue.priority, "agents": [newcomer.pk]},
        )
    assert response.status_code == 302
    assert list(queue.agents.all()) == [newcomer]
    queued.refresh_from_db()
    assert queued.agent == newcomer


def test_membership_changed_outside_the_engine_waits_for_the_sweep(queue, queued, commit):
    """No signal drains behind the engine's back: the engine's membership services do."""
    newcomer = AgentFactory(presence=Presence.AVAILABLE, capacity=100)
    with commit():
        queue.agents.add(newcomer)
    queued.refresh_from_db()
    assert queued.status == Status.OPEN
    services.queues_drain()
    queued.refresh_from_db()
    assert queued.agent == newcomer


def page_form(response) -> dict:
    """What a browser would post back from an admin change page, unchanged."""
    data: dict = {}
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        forms.append(formset.management_form)
        forms.extend(formset.forms)
    for form in forms:
        for field in form:
            value = field.value()
            widget = field.field.widget
            if field.field.disabled or value is None or value is False:
                continue
            if isinstance(widget, MultiWidget):
                for i, part in enumerate(widget.decompress(value)):
                    data[f"{field.html_name}_{i}"] = "" if part is None else part
            elif value is True:
                data[field.html_name] = "on"
            elif isinstance(value, list | tuple):
                data[field.html_name] = [getattr(item, "pk", item) for item in value]
            else:
                data[field.html_name] = value
    return data


def test_an_agent_who_leaves_the_queue_in_the_same_edit_is_not_given_its_conversations(
    admin_client, alice, persistent, commit
):
    """The drain is of the queues the agent works in after the edit."""
    services.agent_presence_set(agent=alice, presence=Presence.OFFLINE)
    customer = CustomerFactory(authentication_setting=persistent.authentication_setting)
    conversation = services.customer_message_send(widget=persistent, customer=customer, body="hi").conversation
    with commit():
        admin_client.post(
            reverse("admin:agents_agent_change", args=[alice.pk]),
            agent_form(alice, presence=Presence.AVAILABLE, presence_auto="on", queues=[]),
        )
    conversation.refresh_from_db()
    assert conversation.status == Status.OPEN  # alice left the queue in the same edit


def test_turning_off_an_agents_emails_in_the_admin_sends_no_frame(admin_client, alice, commit, broadcasts):
    with commit():
        response = admin_client.post(
            reverse("admin:agents_agent_change", args=[alice.pk]), agent_form(alice, email_notifications="")
        )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.email_notifications is False
    assert broadcasts == []
