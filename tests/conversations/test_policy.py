"""Assignment policy as pure functions: ranking agents and the presence capacity gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agents.models import Agent, Presence
from conversations.policy import presence_for, rank_agents
from workstreams.models import AssignmentMethod

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
HIGHEST = AssignmentMethod.HIGHEST_CAPACITY


def agent(pk: int, *, capacity: int = 100, last_assigned_at=None, presence=Presence.AVAILABLE, auto=True) -> Agent:
    return Agent(pk=pk, capacity=capacity, last_assigned_at=last_assigned_at, presence=presence, presence_auto=auto)


def test_most_free_capacity_first_then_the_agent_assigned_least_recently():
    never, earlier, later = (
        agent(3),
        agent(1, last_assigned_at=NOW - timedelta(hours=1)),
        agent(2, last_assigned_at=NOW),
    )
    full = agent(4, capacity=40)
    ranked = rank_agents([later, full, earlier, never], dict.fromkeys((1, 2, 3, 4), 0), 50, HIGHEST, 0, NOW)
    assert [a.pk for a in ranked] == [3, 1, 2]  # one never assigned comes first; 4 has no room
    idle = agent(5)
    ranked = rank_agents([never, idle], {3: 50, 5: 0}, 50, HIGHEST, 0, NOW)
    assert [a.pk for a in ranked] == [5, 3]


def test_round_robin_starts_after_the_cursor_and_wraps_around():
    agents = [agent(pk) for pk in (5, 1, 3)]
    assert [
        a.pk for a in rank_agents(agents, dict.fromkeys((1, 3, 5), 0), 50, AssignmentMethod.ROUND_ROBIN, 3, NOW)
    ] == [5, 1, 3]


def test_presence_follows_capacity_only_while_the_agent_lets_it():
    assert presence_for(agent(1, capacity=100), 0) == Presence.AVAILABLE
    assert presence_for(agent(1, capacity=100), 50) == Presence.BUSY
    assert presence_for(agent(1, capacity=100), 100) == Presence.BUSY_DND
    assert presence_for(agent(1, presence=Presence.BUSY, auto=False), 0) == Presence.BUSY
    assert presence_for(agent(1, presence=Presence.AWAY), 0) == Presence.AWAY
