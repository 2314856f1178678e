"""Bench fixtures on the Omnichannel side (Django). Run by bench/run.py with the bench's
environment, e.g. ``python -m bench.omni_setup latency --out var/bench/latency.json``.

Fixture rows are created in bulk, like test factories, so that setting up 1,000 active
conversations takes a second; everything the figures measure goes through the real server
(sockets, REST, Celery).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from datetime import timedelta

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "omnichannel.settings")
if not any(word in os.environ.get("DATABASE_URL", "") for word in ("bench", "faults")):
    # It closes every ongoing conversation: never on a database that is not the bench's (or
    # the fault tests' own cluster's).
    raise SystemExit(
        "bench.omni_setup runs from bench/run.py or tests/faults, on their own database (DATABASE_URL with "
        "'bench' or 'faults')"
    )

import django

django.setup()

import jwt  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from agents.models import Agent, ApiToken, Presence  # noqa: E402
from conversations.models import Conversation, Customer, Message, Sender, Status  # noqa: E402
from conversations.selectors import message_page  # noqa: E402
from workstreams.demo import DEMO_KID, DEMO_SETTING_NAME, ensure_private_key, seed_demo  # noqa: E402
from workstreams.models import AuthenticationSetting, ChatWidget  # noqa: E402

WIDGET = "demo-persistent"
TOKEN_TTL = timedelta(hours=3)


def _widget() -> ChatWidget:
    return ChatWidget.objects.select_related("workstream", "authentication_setting").get(widget_key=WIDGET)


def _tokens(subs: list[str]) -> list[str]:
    """Customer JWTs of the demo widget's "Demo site" setting (as ``manage.py demo_token``)."""
    setting = AuthenticationSetting.objects.get(name=DEMO_SETTING_NAME)
    key = ensure_private_key()
    now = timezone.now()
    base = {"iss": setting.issuer, "aud": setting.audience, "iat": now, "nbf": now, "exp": now + TOKEN_TTL}
    return [
        jwt.encode({**base, "sub": sub, "name": sub}, key, algorithm="RS256", headers={"kid": DEMO_KID}) for sub in subs
    ]


def _agents(prefix: str, count: int, *, capacity: int, presence: str) -> list[Agent]:
    """Agents ``<prefix>-1..count``, members of the persistent queue (``_token_key`` gives each
    an API key)."""
    User = get_user_model()
    widget = _widget()
    queue = widget.workstream.queue
    agents = []
    for n in range(1, count + 1):
        user, _ = User.objects.get_or_create(username=f"{prefix}-{n}", defaults={"first_name": f"Agent {n}"})
        agent, _ = Agent.objects.get_or_create(user=user)
        agent.capacity = capacity
        agent.presence = presence
        agent.presence_auto = True
        agent.save()
        queue.agents.add(agent)
        agents.append(agent)
    return agents


def _customers(prefix: str, count: int) -> list[Customer]:
    setting = _widget().authentication_setting
    existing = {
        c.external_id: c
        for c in Customer.objects.filter(authentication_setting=setting, external_id__startswith=prefix)
    }
    missing = [
        Customer(authentication_setting=setting, external_id=f"{prefix}{n}", display_name=f"{prefix}{n}")
        for n in range(count)
        if f"{prefix}{n}" not in existing
    ]
    Customer.objects.bulk_create(missing, batch_size=2000)
    by_id = {
        c.external_id: c
        for c in Customer.objects.filter(authentication_setting=setting, external_id__startswith=prefix)
    }
    return [by_id[f"{prefix}{n}"] for n in range(count)]


def _close_ongoing() -> None:
    now = timezone.now()
    Conversation.objects.filter(status__in=[Status.OPEN, Status.ACTIVE, Status.WAITING, Status.WRAP_UP]).update(
        status=Status.CLOSED, closed_at=now, ended_at=now
    )


def _token_key(agent: Agent) -> str:
    """A new API key of the agent: only digests are stored, so an earlier key cannot be read
    back. The agent's earlier bench tokens are revoked, so they do not pile up over runs."""
    ApiToken.objects.filter(user=agent.user, name="bench").delete()
    return ApiToken.objects.issue(user=agent.user, name="bench")[1]


@transaction.atomic
def latency(customers: int, agents: int) -> dict:
    """``agents`` available agents, ``customers`` customers each with an active persistent
    conversation with one of them (round robin)."""
    seed_demo()
    widget = _widget()
    _close_ongoing()
    team = _agents("bench-agent", agents, capacity=50 * -(-customers // agents), presence=Presence.AVAILABLE)
    people = _customers("bench-c-", customers)
    now = timezone.now()
    rows = [
        Conversation(
            workstream=widget.workstream,
            widget=widget,
            queue=widget.workstream.queue,
            customer=customer,
            agent=team[n % agents],
            status=Status.ACTIVE,
            language=widget.language,
            created_at=now,
            assigned_at=now,
            first_assigned_at=now,
            last_activity_at=now,
        )
        for n, customer in enumerate(people)
    ]
    Conversation.objects.bulk_create(rows, batch_size=2000)
    tokens = _tokens([c.external_id for c in people])
    return {
        "agents": [{"id": a.pk, "token": _token_key(a)} for a in team],
        "conversations": [
            {"id": conv.pk, "agent_id": conv.agent_id, "token": token} for conv, token in zip(rows, tokens, strict=True)
        ],
    }


def idle(count: int) -> dict:
    """Tokens for ``count`` customers who only connect (the connections figure)."""
    return {"tokens": _tokens([f"bench-idle-{n}" for n in range(count)])}


def history(messages: int) -> dict:
    """One conversation with ``messages`` messages, and the EXPLAIN of the latest page."""
    seed_demo()
    widget = _widget()
    (agent,) = _agents("bench-history", 1, capacity=1_000_000, presence=Presence.OFFLINE)
    (customer,) = _customers("bench-history-", 1)
    Conversation.objects.filter(customer=customer).update(status=Status.CLOSED)
    now = timezone.now()
    conversation = Conversation.objects.create(
        workstream=widget.workstream,
        widget=widget,
        queue=widget.workstream.queue,
        customer=customer,
        agent=agent,
        status=Status.ACTIVE,
        language=widget.language,
        created_at=now,
        assigned_at=now,
        last_activity_at=now,
        last_seq=messages,
        customer_last_seq=messages,
    )
    table = Message._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {table} (conversation_id, seq, customer_seq, sender, author, kind, body, client_id,
                                 created_at, agent_id, channel)
            SELECT %s, n, n, CASE WHEN n %% 2 = 0 THEN 'agent' ELSE 'customer' END, 'bench', '',
                   'History message number ' || n, md5(n::text), %s - (%s - n) * interval '1 second', NULL,
                   'chat'
            FROM generate_series(1, %s) AS n""",  # noqa: S608 - the table name is the model's
            [conversation.pk, now, messages, messages],
        )
        # Settled, as a long-lived table is: no autovacuum of the fresh rows during the figure.
        cursor.execute(f"VACUUM ANALYZE {table}")
    plans = {}
    from conversations.models import Message as M

    qs = M.objects.filter(conversation_id=conversation.pk)
    plans["latest"] = qs.order_by("-seq")[:51].explain()
    plans["middle"] = qs.filter(seq__lt=messages // 2).order_by("-seq")[:51].explain()
    assert len(message_page(conversation.pk)[0]) == 50
    return {"conversation_id": conversation.pk, "token": _token_key(agent), "explain": plans, "messages": messages}


def assignment(conversations: int, agents: int, *, keep_ongoing: bool = False, capacity: int | None = None) -> dict:
    """Every other conversation closed and every agent offline; then ``conversations`` open
    conversations (one customer message each) queued in the persistent queue, and ``agents``
    offline agents of that queue with room for all of them (or ``capacity`` each).
    ``keep_ongoing``: leave other conversations and agents as they are (the fault tests)."""
    seed_demo()
    widget = _widget()
    with transaction.atomic():
        if not keep_ongoing:
            _close_ongoing()
            Agent.objects.update(presence=Presence.OFFLINE)
        capacity = capacity or 50 * -(-conversations // agents)
        tag = uuid.uuid4().hex[:6] if keep_ongoing else ""
        team = _agents(f"bench-assign{tag}", agents, capacity=capacity, presence=Presence.OFFLINE)
        people = _customers(f"bench-q{tag}-", conversations)
        start = timezone.now() - timedelta(minutes=5)
        rows = [
            Conversation(
                workstream=widget.workstream,
                widget=widget,
                queue=widget.workstream.queue,
                customer=customer,
                status=Status.OPEN,
                language=widget.language,
                created_at=start + timedelta(milliseconds=n),
                queued_at=start + timedelta(milliseconds=n),
                last_activity_at=start,
                last_customer_message_at=start,
                last_seq=1,
                customer_last_seq=1,
                offline_notified=True,
            )
            for n, customer in enumerate(people)
        ]
        Conversation.objects.bulk_create(rows, batch_size=2000)
        Message.objects.bulk_create(
            [
                Message(
                    conversation=c,
                    seq=1,
                    customer_seq=1,
                    sender=Sender.CUSTOMER,
                    author=c.customer.display_name,
                    body="Hello, anyone there?",
                    created_at=start,
                )
                for c in rows
            ],
            batch_size=2000,
        )
    return {
        "agents": [{"id": a.pk, "token": _token_key(a)} for a in team],
        "conversation_ids": [c.pk for c in rows],
        "capacity": team[0].capacity,
        "units": widget.workstream.capacity_units,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["latency", "idle", "history", "assignment"])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--keep-ongoing", action="store_true")
    parser.add_argument("--capacity", type=int)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.what == "latency":
        data = latency(args.customers, args.agents)
    elif args.what == "idle":
        data = idle(args.count)
    elif args.what == "history":
        data = history(args.messages)
    else:
        data = assignment(args.conversations, args.agents, keep_ongoing=args.keep_ongoing, capacity=args.capacity)
    with open(args.out, "w") as handle:
        json.dump(data, handle)
    print(f"omni_setup {args.what}: wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
