"""The cast and the resources of the authorization matrix (tests/test_authorization_matrix.py,
tests/realtime/test_authorization_matrix.py): every role, and one conversation each of
customer A (persistent chat, assigned to the agent of the queue) and of a visitor (live chat).
Secrets in them must never reach a role that is not entitled to them."""

from __future__ import annotations

from dataclasses import dataclass, field

from agents.models import Presence
from conversations import services
from conversations.authentication import issue_visitor_token
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
OTHER_AGENT = "other_agent"  # of another queue only
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
# Who may see customer A's conversation, and the visitor's.
SEES_A = frozenset({CUSTOMER_A, AGENT, STAFF, SUPERUSER})
SEES_VISITOR = frozenset({VISITOR, AGENT, STAFF, SUPERUSER})


@dataclass
class World:
    persistent: object
    live: object
    queue: object
    other_queue: object
    conversation: Conversation  # customer A's, active with AGENT
    visitor_conversation: Conversation  # the visitor's, active with AGENT
    users: dict = field(default_factory=dict)  # role -> User
    agents: dict = field(default_factory=dict)  # role -> Agent
    customer_tokens: dict = field(default_factory=dict)  # role -> token (customer roles)

    def widget(self, name: str):
        return self.persistent if name == "persistent" else self.live

    api_keys: dict = field(default_factory=dict)  # role -> API key, issued on first use

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

    from conversations.authentication import authenticate_customer

    visitor = authenticate_customer(live, visitor_token)
    visitor_conversation = services.customer_message_send(widget=live, customer=visitor, body=SECRET_VISITOR)
    _assign(visitor_conversation.conversation, agent)

    return World(
        persistent=persistent,
        live=live,
        queue=queue,
        other_queue=other_queue,
        conversation=conversation,
        visitor_conversation=visitor_conversation.conversation,
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
    if role not in SEES_A:
        found += [secret for secret in (SECRET_A, EMAIL_A) if secret in text]
    if role not in SEES_VISITOR and SECRET_VISITOR in text:
        found.append(SECRET_VISITOR)
    return found
