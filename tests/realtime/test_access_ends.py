"""Access that ends when it should (docs/protocol.md, part 2): an agent socket closes with 4401
when its session is logged out, its user is deactivated or deleted or loses its agent profile,
or its API token is deleted; other sockets of the same user that still have their access stay
open. A customer socket closes with 4401 when its JWT expires, unless a fresh ``auth`` frame
renewed it; the renewal answers ``ready`` again and keeps the socket."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async as in_db

from agents import consumers as agent_consumers
from agents.models import Agent, ApiToken
from conversations.consumers import CLOSE_UNAUTHENTICATED
from conversations.customer_tokens import (
    VISITOR_TOKEN_MAX_AGE,
    authenticate_customer_until,
    get_widget,
    issue_visitor_token,
)
from conversations.models import Customer
from tests.realtime.conftest import customer_token, logged_in, session_socket
from tests.realtime.test_agent_socket import connect_agent
from workstreams import customer_jwt

pytestmark = pytest.mark.django_db(transaction=True)

# The contract's bound: closed within 5 s of the end of access.
WITHIN = 5


async def token_socket(socket, agent):
    return (await connect_agent(socket, agent))[0]


async def closed_for_authentication(s) -> bool:
    frame = await s.until(lambda f: f["type"] == "error", timeout=WITHIN)
    assert frame["code"] == "authentication_required"
    return await s.closed(timeout=WITHIN) == CLOSE_UNAUTHENTICATED


async def still_open(s) -> bool:
    await s.drain(0.5)
    return s.closed_with is None


async def test_logging_out_closes_the_sockets_of_that_session_only(socket, alice):
    client = await in_db(logged_in)(alice.user)
    other_session = await in_db(logged_in)(alice.user)
    s = await session_socket(socket, client)
    other = await session_socket(socket, other_session)
    by_token = await token_socket(socket, alice)

    response = await in_db(client.post)("/accounts/logout/")
    assert response.status_code == 302

    assert await closed_for_authentication(s)
    assert await still_open(other)
    assert await still_open(by_token)


async def test_deactivating_the_user_closes_all_its_sockets(socket, alice):
    client = await in_db(logged_in)(alice.user)
    sockets = [await session_socket(socket, client), await token_socket(socket, alice)]

    def deactivate():
        alice.user.is_active = False
        alice.user.save()

    await in_db(deactivate)()
    for s in sockets:
        assert await closed_for_authentication(s)


async def test_losing_the_agent_profile_closes_the_agents_sockets(socket, alice):
    s = await token_socket(socket, alice)
    await in_db(Agent.objects.filter(pk=alice.pk).delete)()
    assert await closed_for_authentication(s)


async def test_deleting_the_token_closes_the_sockets_opened_with_it_only(socket, alice):
    client = await in_db(logged_in)(alice.user)
    by_session = await session_socket(socket, client)
    s = await token_socket(socket, alice)
    await in_db(ApiToken.objects.filter(user=alice.user).delete)()
    assert await closed_for_authentication(s)
    assert await still_open(by_session)


async def test_another_users_end_of_access_closes_nothing_of_this_one(socket, alice, bob):
    s = await token_socket(socket, alice)
    await in_db(ApiToken.objects.filter(user=bob.user).delete)()
    await in_db(Agent.objects.filter(pk=bob.pk).delete)()
    assert await still_open(s)


async def test_an_end_of_access_no_signal_announced_is_found_by_the_periodic_check(socket, alice, monkeypatch):
    """A bulk update sends no signal: the socket's own check finds it."""
    monkeypatch.setattr(agent_consumers, "ACCESS_CHECK_INTERVAL", 0.2)
    s = await token_socket(socket, alice)
    assert await still_open(s)  # checked at least once, and the access still stands
    await in_db(lambda: type(alice.user).objects.filter(pk=alice.user.pk).update(is_active=False))()
    assert await closed_for_authentication(s)


async def test_a_session_ended_without_logout_is_found_by_the_periodic_check(socket, alice, monkeypatch):
    monkeypatch.setattr(agent_consumers, "ACCESS_CHECK_INTERVAL", 0.2)
    client = await in_db(logged_in)(alice.user)
    s = await session_socket(socket, client)
    await in_db(client.session.delete)()
    assert await closed_for_authentication(s)


# --- The customer's socket -----------------------------------------------------------------------


@pytest.fixture
def no_leeway(monkeypatch):
    """The 30 s leeway of the contract, made 0 so that a token expires within the test."""
    monkeypatch.setattr(customer_jwt, "LEEWAY", timedelta(0))


def token_expiring_in(setting, seconds: float, sub: str = "carol") -> str:
    now = time.time()
    return customer_token(setting, sub=sub, iat=int(now), exp=int(now + seconds) + 1)


async def customer_socket(socket, widget, token: str):
    s = socket(f"/ws/widget/{widget.widget_key}/")
    assert await s.connect()
    await s.send({"type": "auth", "token": token, "after_seq": 0})
    await s.until(lambda f: f["type"] == "ready")
    return s


async def test_a_customer_socket_closes_when_its_jwt_expires(socket, persistent, no_leeway):
    s = await customer_socket(socket, persistent, token_expiring_in(persistent.authentication_setting, 1))
    frame = await s.until(lambda f: f["type"] == "error", timeout=WITHIN)
    assert frame["code"] == "invalid_token"
    assert await s.closed() == CLOSE_UNAUTHENTICATED


async def test_a_fresh_auth_frame_before_expiry_answers_ready_and_keeps_the_socket(socket, persistent, no_leeway):
    setting = persistent.authentication_setting
    s = await customer_socket(socket, persistent, token_expiring_in(setting, 1))
    await s.send({"type": "message.send", "client_id": "c1", "body": "before"})
    await s.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "c1")
    await s.send({"type": "auth", "token": token_expiring_in(setting, 60), "after_seq": 1})
    ready = await s.until(lambda f: f["type"] == "ready")
    assert ready["conversation"] is not None
    await asyncio.sleep(2.5)  # past the first token's expiry
    await s.send({"type": "message.send", "client_id": "c2", "body": "after"})
    await s.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "c2")
    assert s.closed_with is None
    customer = await in_db(Customer.objects.get)(external_id="carol")
    assert customer.connection_count == 1  # a renewal is not a second connection


async def test_a_renewal_naming_another_customer_closes_the_socket(socket, persistent):
    setting = persistent.authentication_setting
    s = await customer_socket(socket, persistent, customer_token(setting, sub="carol"))
    await s.send({"type": "auth", "token": customer_token(setting, sub="mallory")})
    frame = await s.until(lambda f: f["type"] == "error")
    assert frame["code"] == "invalid_token"
    assert await s.closed() == CLOSE_UNAUTHENTICATED


async def test_a_refused_renewal_closes_the_socket(socket, persistent):
    s = await customer_socket(socket, persistent, customer_token(persistent.authentication_setting))
    await s.send({"type": "auth", "token": "not-a-jwt"})
    assert (await s.until(lambda f: f["type"] == "error"))["code"] == "invalid_token"
    assert await s.closed() == CLOSE_UNAUTHENTICATED


async def test_a_visitor_socket_stands_as_long_as_its_token(socket, live):
    token = await in_db(issue_visitor_token)(live)
    widget = await in_db(get_widget)(live.widget_key)
    _customer, until = await in_db(authenticate_customer_until)(widget, token)
    assert until == pytest.approx(time.time() + VISITOR_TOKEN_MAX_AGE, abs=5)
    s = await customer_socket(socket, live, token)
    assert await still_open(s)


def test_a_jwt_stands_until_its_exp_plus_the_leeway_of_auth(persistent):
    now = int(time.time())
    token = customer_token(persistent.authentication_setting, iat=now, exp=now + 300)
    _customer, until = authenticate_customer_until(persistent, token)
    assert until == now + 300 + customer_jwt.LEEWAY.total_seconds()
