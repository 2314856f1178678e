"""The cast and the resources of the authorization matrix (tests/test_authorization_matrix.py,
tests/realtime/test_authorization_matrix.py): every role, and one conversation each of
customer A (persistent chat, assigned to the agent of the queue) and of a visitor (live chat).
Customer A also has a live conversation in a private queue, handled by the other agent, and an
earlier, closed one there: the same customer with two agents in two queues (issue #19). Secrets
in them must never reach a role that is not entitled to them."""

from __future__ import annotations

from dataclasses import dataclass, field

from agents.models import Presence
from conversations import services
from conversations.customer_tokens import issue_visitor_token
from conversations.models import Conversation, Status
from tests.factories import (
    AgentFactory,
    AuthenticationSettingFactory,
    ChatWidgetFactory,
    CustomerFactory,
    QueueFactory,
    UserFactory,
    WorkstreamFactory,
    api_key,
)
from tests.realtime.conftest import customer_token

ANONYMOUS = "anonymous"
VISITOR = "visitor"
CUSTOMER_A = "customer_a"
CUSTOMER_B = "customer_b"
AGENT = "agent"  # of the queue; customer A's conversation is assigned to it
OTHER_AGENT = "other_agent"  # of the other queues only; holds customer A's private conversation
STAFF = "staff"  # a supervisor without an agent profile
SUPERUSER = "superuser"
ROLES = (ANONYMOUS, VISITOR, CUSTOMER_A, CUSTOMER_B, AGENT, OTHER_AGENT, STAFF, SUPERUSER)
CUSTOMERS = (VISITOR, CUSTOMER_A, CUSTOMER_B)
USERS = (AGENT, OTHER_AGENT, STAFF, SUPERUSER)

# Outcomes. OK: the request got past authentication and authorization (a domain refusal
# such as invalid_transition or customer_cannot_end is still OK: the caller may ask).
OK = "ok"
UNAUTHENTICATED = "unauthenticated"  # 401, a redirect to a login page, a socket closed with 4401
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"

SECRET_A = "secret-of-customer-a-5e1f"  # a message body in customer A's conversation
EMAIL_A = "carol.private@example.com"
SECRET_VISITOR = "secret-of-the-visitor-9c2d"
SECRET_PRIVATE = "secret-of-the-private-queue-71ab"  # customer A's live chat with OTHER_AGENT
SECRET_CLOSED = "secret-of-the-closed-chat-3f60"  # customer A's earlier, closed chat there
# Who may see customer A's conversation, the visitor's, customer A's private one and its closed one.
SEES_A = frozenset({CUSTOMER_A, AGENT, STAFF, SUPERUSER})
SEES_VISITOR = frozenset({VISITOR, AGENT, STAFF, SUPERUSER})
SEES_PRIVATE = frozenset({CUSTOMER_A, OTHER_AGENT, STAFF, SUPERUSER})
# Closed: readable by every agent holding a current conversation of customer A.
SEES_CLOSED = frozenset({CUSTOMER_A, AGENT, OTHER_AGENT, STAFF, SUPERUSER})

# The conversations a conversation URL or frame is probed with, and the agents that may read
# each (staff read all) and act on each.
TARGETS = ("a", "private", "closed")
READERS = {"a": {AGENT}, "private": {OTHER_AGENT}, "closed": {AGENT, OTHER_AGENT}}
ACTORS = {"a": {AGENT}, "private": {OTHER_AGENT}, "closed": {OTHER_AGENT}}


@dataclass
class World:
    persistent: object
    live: object
    queue: object
    other_queue: object
    conversation: Conversation  # customer A's, active with AGENT
    visitor_conversation: Conversation  # the visitor's, active with AGENT
    private_conversation: Conversation  # customer A's live chat in the private queue, with OTHER_AGENT
    closed_conversation: Conversation  # customer A's earlier chat there, closed
    users: dict = field(default_factory=dict)  # role -> User
    agents: dict = field(default_factory=dict)  # role -> Agent
    customer_tokens: dict = field(default_factory=dict)  # role -> token (customer roles)

    api_keys: dict = field(default_factory=dict)  # role -> API key, issued on first use

    def widget(self, name: str):
        return self.persistent if name == "persistent" else self.live

    def target(self, name: str) -> Conversation:
        return {"a": self.conversation, "private": self.private_conversation, "closed": self.closed_conversation}[name]

    def drf_token(self, role: str) -> str:
        if role not in self.api_keys:
            self.api_keys[role] = api_key(self.users[role])
        return self.api_keys[role]


def build_world() -> World:
    queue = QueueFactory(name="Support")
    other_queue = QueueFactory(name="Billing")
    agent = AgentFactory(user__username="alice", user__first_name="Alice", presence=Presence.AVAILABLE)
    other_agent = AgentFactory(user__username="bob", user__first_name="Bob", presence=Presence.AVAILABLE)
    queue.agents.add(agent)
    other_queue.agents.add(other_agent)
    staff = UserFactory(username="sue", is_staff=True)
    superuser = UserFactory(username="root", is_staff=True, is_superuser=True)

    setting = AuthenticationSettingFactory(name="Shop")
    persistent = ChatWidgetFactory(
        widget_key="persistent",
        workstream=WorkstreamFactory(name="Persistent", queue=queue, capacity_units=10, persistent_mode=True),
        authentication_setting=setting,
    )
    live = ChatWidgetFactory(
        widget_key="live", workstream=WorkstreamFactory(name="Live", queue=queue, capacity_units=10)
    )
    carol = CustomerFactory(authentication_setting=setting, external_id="carol", display_name="Carol", email=EMAIL_A)
    CustomerFactory(authentication_setting=setting, external_id="dave", display_name="Dave")
    visitor_token = issue_visitor_token(live)

    conversation = services.customer_message_send(widget=persistent, customer=carol, body=SECRET_A).conversation
    _assign(conversation, agent)
    services.agent_message_send(conversation_id=conversation.pk, agent=agent, body="Hello Carol")

    from conversations.customer_tokens import authenticate_customer

    visitor = authenticate_customer(live, visitor_token)
    visitor_conversation = services.customer_message_send(widget=live, customer=visitor, body=SECRET_VISITOR)
    _assign(visitor_conversation.conversation, agent)

    # Customer A in a private queue of the other agent's: a closed chat, then a live one.
    private_queue = QueueFactory(name="Private")
    private_queue.agents.add(other_agent)
    private = ChatWidgetFactory(
        widget_key="private",
        workstream=WorkstreamFactory(name="Private", queue=private_queue, capacity_units=10),
        authentication_setting=setting,
    )
    closed = services.customer_message_send(widget=private, customer=carol, body=SECRET_CLOSED).conversation
    _assign(closed, other_agent)
    services.conversation_end(conversation_id=closed.pk, agent=other_agent)
    closed = services.conversation_close(conversation_id=closed.pk, agent=other_agent)
    private_conversation = services.customer_message_send(widget=private, customer=carol, body=SECRET_PRIVATE)
    _assign(private_conversation.conversation, other_agent)

    return World(
        persistent=persistent,
        live=live,
        queue=queue,
        other_queue=other_queue,
        conversation=conversation,
        visitor_conversation=visitor_conversation.conversation,
        private_conversation=private_conversation.conversation,
        closed_conversation=closed,
        users={AGENT: agent.user, OTHER_AGENT: other_agent.user, STAFF: staff, SUPERUSER: superuser},
        agents={AGENT: agent, OTHER_AGENT: other_agent},
        customer_tokens={
            VISITOR: visitor_token,
            CUSTOMER_A: customer_token(setting, sub="carol"),
            CUSTOMER_B: customer_token(setting, sub="dave"),
        },
    )


def _assign(conversation: Conversation, agent) -> None:
    """Assigned to ``agent``: by the push drain when on-commit callbacks run (a transactional
    test), else here."""
    conversation.refresh_from_db()
    if conversation.status == Status.OPEN:
        services.conversation_assign(conversation_id=conversation.pk, agent=agent)
    conversation.refresh_from_db()
    assert conversation.agent_id == agent.pk


def leaks(role: str, text: str) -> list[str]:
    """The secrets in ``text`` that ``role`` may not see."""
    found = []
    for secret, seen_by in SECRETS:
        if role not in seen_by and secret in text:
            found.append(secret)
    return found


# Each secret and who may see it; customer A's email goes with any of customer A's conversations.
SECRETS = (
    (SECRET_A, SEES_A),
    (EMAIL_A, SEES_A | SEES_PRIVATE | SEES_CLOSED),
    (SECRET_VISITOR, SEES_VISITOR),
    (SECRET_PRIVATE, SEES_PRIVATE),
    (SECRET_CLOSED, SEES_CLOSED),
)
