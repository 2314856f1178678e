"""Assignment policy: which agents may take a conversation, in which order (rule 2), and the
presence an agent's capacity in use gives it (rule 13).

Policy decides and never writes: the engine (conversations.services) locks, counts and writes,
and asks these functions what to do. ``rank_agents`` and ``presence_for`` are pure functions of
what the caller passes in; ``eligible_agent_ids`` first reads the queue's agents and their
capacity in use, without locking them."""

from __future__ import annotations

from datetime import datetime

from agents.models import Agent, Presence
from conversations.models import Conversation
from conversations.selectors import capacity_used
from workstreams.models import AssignmentMethod

# Presences that follow capacity while the agent lets them (``Agent.presence_auto``).
AUTOMATIC_PRESENCES = (Presence.AVAILABLE, Presence.BUSY, Presence.BUSY_DND)


def eligible_agent_ids(conversation: Conversation, now: datetime) -> list[int]:
    """Agents of the conversation's queue, in an allowed presence, with enough free
    capacity, best first by the workstream's assignment method (before locking)."""
    workstream = conversation.workstream
    agents = list(Agent.objects.filter(queues=conversation.queue_id, presence__in=workstream.allowed_presences))
    used = capacity_used([agent.pk for agent in agents], now)
    cursor = conversation.queue.round_robin_cursor or 0
    ranked = rank_agents(agents, used, workstream.capacity_units, workstream.assignment_method, cursor, now)
    return [agent.pk for agent in ranked]


def rank_agents(
    agents: list[Agent], used: dict[int, int], units: int, method: str, cursor: int, now: datetime
) -> list[Agent]:
    """Agents with room for ``units``, best first: round robin after ``cursor``, else the most
    free capacity, ties to the agent assigned least recently (never first)."""
    free = [agent for agent in agents if agent.capacity - used[agent.pk] >= units]
    if method == AssignmentMethod.ROUND_ROBIN:
        free.sort(key=lambda agent: agent.pk)
        return [a for a in free if a.pk > cursor] + [a for a in free if a.pk <= cursor]
    free.sort(
        key=lambda a: (-(a.capacity - used[a.pk]), a.last_assigned_at is not None, a.last_assigned_at or now, a.pk)
    )
    return free


def presence_for(agent: Agent, used: int) -> str:
    """The presence the agent's capacity in use gives it (rule 13), or the one it chose."""
    if not agent.presence_auto or agent.presence not in AUTOMATIC_PRESENCES:
        return agent.presence
    return Presence.AVAILABLE if used == 0 else Presence.BUSY_DND if used >= agent.capacity else Presence.BUSY
