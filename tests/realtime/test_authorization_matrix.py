"""The authorization matrix of the WebSocket routes: every route (from omnichannel.routing) ×
every frame its consumer handles (from the consumer itself) × every role → outcome, and no
frame carries a secret to a role not entitled to it. A new route or frame type without a row
fails ``test_every_socket_route_and_frame_has_a_row_in_the_matrix``. REST and pages:
tests/test_authorization_matrix.py."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async as in_db

from conversations import services
from conversations.errors import InvalidTransition
from omnichannel.routing import websocket_urlpatterns
from tests.authorization import (
    AGENT,
    CUSTOMERS,
    FORBIDDEN,
    NOT_FOUND,
    OK,
    OTHER_AGENT,
    ROLES,
    SECRET_A,
    SECRET_PRIVATE,
    SECRET_VISITOR,
    UNAUTHENTICATED,
    World,
    build_world,
    leaks,
)
from tests.realtime.conftest import ORIGIN

pytestmark = pytest.mark.django_db(transaction=True)

WIDGET = "ws/widget/<slug:widget_key>/"
AGENT_SOCKET = "ws/agent/"


def every(outcome: str, **overrides: str) -> dict[str, str]:
    return {**dict.fromkeys(ROLES, outcome), **overrides}


PERSISTENT_CUSTOMERS = every(UNAUTHENTICATED, customer_a=OK, customer_b=OK)
LIVE_VISITORS = every(UNAUTHENTICATED, visitor=OK)
USERS = every(UNAUTHENTICATED, agent=OK, other_agent=OK, staff=OK, superuser=OK)
# Frames naming customer A's conversation (assigned to AGENT); supervisors read, never write.
ON_CONVERSATION = every(UNAUTHENTICATED, agent=OK, other_agent=NOT_FOUND, staff=FORBIDDEN, superuser=FORBIDDEN)
# Frames naming customer A's conversation in the private queue (assigned to OTHER_AGENT).
ON_PRIVATE = every(UNAUTHENTICATED, agent=NOT_FOUND, other_agent=OK, staff=FORBIDDEN, superuser=FORBIDDEN)

# (route, frame type) -> {widget: expectations}. The agent socket has no widget: its variants
# name the conversation its frames carry (None: customer A's; "private": A's in the private queue).
WS_MATRIX: dict[tuple[str, str], dict[str | None, dict[str, str]]] = {
    (WIDGET, "auth"): {"persistent": PERSISTENT_CUSTOMERS, "live": LIVE_VISITORS},
    (WIDGET, "message.send"): {"persistent": PERSISTENT_CUSTOMERS, "live": LIVE_VISITORS},
    (WIDGET, "typing"): {"persistent": PERSISTENT_CUSTOMERS, "live": LIVE_VISITORS},
    # Persistent: A may ask (customer_cannot_end); B has no conversation to end.
    (WIDGET, "conversation.end"): {
        "persistent": {**PERSISTENT_CUSTOMERS, "customer_b": NOT_FOUND},
        "live": LIVE_VISITORS,
    },
    (AGENT_SOCKET, "auth"): {None: USERS},
    (AGENT_SOCKET, "message.send"): {None: ON_CONVERSATION, "private": ON_PRIVATE},
    (AGENT_SOCKET, "typing"): {None: ON_CONVERSATION, "private": ON_PRIVATE},
}


def consumer_class(application):
    while not hasattr(application, "consumer_class"):
        # an origin validator (.application) or session/auth middleware (.inner) around it
        application = getattr(application, "application", None) or application.inner
    return application.consumer_class


def socket_frames() -> set[tuple[str, str]]:
    """Every (route, frame type) the server accepts: ``auth`` and the consumer's handlers."""
    frames = set()
    for pattern in websocket_urlpatterns:
        handlers = consumer_class(pattern.callback)().frame_handlers()
        frames |= {(str(pattern.pattern), frame) for frame in ("auth", *handlers)}
    return frames


def test_every_socket_route_and_frame_has_a_row_in_the_matrix():
    frames = socket_frames()
    assert not sorted(frames - set(WS_MATRIX)), "add these (route, frame) pairs to WS_MATRIX"
    assert not sorted(set(WS_MATRIX) - frames), "WS_MATRIX names frames the server no longer has"
    for (route, frame), variants in WS_MATRIX.items():
        for expect in variants.values():
            assert set(expect) == set(ROLES)
        if route == AGENT_SOCKET and frame != "auth":  # frames naming a conversation: both of A's
            assert set(variants) == {None, "private"}, f"{frame}: probe customer A's private conversation too"


def test_a_new_frame_type_without_a_row_fails_the_matrix(monkeypatch):
    from agents.consumers import AgentConsumer

    real = AgentConsumer.frame_handlers
    monkeypatch.setattr(AgentConsumer, "frame_handlers", lambda self: {**real(self), "conversation.close": None})
    assert socket_frames() - set(WS_MATRIX) == {(AGENT_SOCKET, "conversation.close")}


CASES = [
    pytest.param(route, frame, widget, id=f"{route}-{frame}-{widget or 'agent'}")
    for (route, frame), variants in WS_MATRIX.items()
    for widget in variants
]

CODES = {
    "forbidden": FORBIDDEN,
    "not_found": NOT_FOUND,
    "invalid_token": UNAUTHENTICATED,
    "authentication_required": UNAUTHENTICATED,
}


def frame_for(frame_type: str, world: World, target: str = "a") -> dict:
    conversation = world.target(target)
    return {
        "message.send": {"type": "message.send", "client_id": "matrix-1", "body": "Hi", "conversation_id": 0},
        "typing": {"type": "typing"},
        "conversation.end": {"type": "conversation.end"},
    }[frame_type] | ({"conversation_id": conversation.pk} if frame_type != "conversation.end" else {})


async def answer(s, frame: dict) -> str:
    """The outcome of one frame: an error frame's code, else OK (the echo of a message, the
    conversation after an end, silence after typing)."""
    await s.send(frame)
    try:
        for received in [await s.next(timeout=1.5)] if frame["type"] != "typing" else await s.drain(0.3):
            if received["type"] == "error":
                if CODES.get(received["code"]) == UNAUTHENTICATED:
                    assert await s.closed() == 4401
                return CODES.get(received["code"], OK)
            if received["type"] in ("message", "conversation"):
                return OK
    except ConnectionError:
        return UNAUTHENTICATED
    except TimeoutError:
        pass
    return OK


async def authenticate(s, route: str, role: str, world: World) -> str:
    if role in CUSTOMERS:
        token = world.customer_tokens[role]
    elif role in world.users:
        token = await in_db(world.drf_token)(role)
    else:
        token = None
    await s.send({"type": "auth", **({"token": token} if token else {}), "after_seq": 0})
    try:
        first = await s.next()
    except ConnectionError:
        return UNAUTHENTICATED
    if first["type"] == "ready":
        return OK
    assert first["type"] == "error", first
    assert await s.closed() == 4401  # refused credentials close the socket
    return CODES.get(first["code"], OK)


async def secrets_arrive(world: World) -> None:
    """Something new happens in every conversation: who hears it?"""
    for conversation, agent, secret in (
        (world.conversation, world.agents[AGENT], SECRET_A),
        (world.visitor_conversation, world.agents[AGENT], SECRET_VISITOR),
        (world.private_conversation, world.agents[OTHER_AGENT], SECRET_PRIVATE),
    ):
        try:
            await in_db(services.agent_message_send)(
                conversation_id=conversation.pk, agent=agent, body=secret + " again"
            )
        except InvalidTransition:  # the customer ended it (conversation.end)
            pass


@pytest.mark.parametrize(("route", "frame_type", "widget"), CASES)
async def test_each_role_gets_its_outcome_on_the_socket_and_hears_nothing_it_may_not(socket, route, frame_type, widget):
    world = await in_db(build_world)()
    expect = WS_MATRIX[(route, frame_type)][widget]
    path = f"/ws/widget/{world.widget(widget).widget_key}/" if route == WIDGET else "/ws/agent/"
    target = "private" if widget == "private" else "a"
    origin = ORIGIN if route == WIDGET else "http://testserver"
    wrong = []
    for role in ROLES:
        s = socket(path, origin=origin)
        assert await s.connect()
        got = await authenticate(s, route, role, world)
        if frame_type != "auth":
            if got == OK:
                got = await answer(s, frame_for(frame_type, world, target))
            else:  # a fresh socket, the frame first: refused before anything else
                s = socket(path, origin=origin)
                assert await s.connect()
                got = await answer(s, frame_for(frame_type, world, target))
        if got != expect[role]:
            wrong.append(f"{role}: {got}, expected {expect[role]}")
        if s.closed_with is None:
            await secrets_arrive(world)
            try:
                await s.drain(0.3)
            except ConnectionError:  # refused: the close after the error frame
                pass
        leaked = leaks(role, json.dumps(s.frames))
        if leaked:
            wrong.append(f"{role} heard {leaked}")
        await s.close()
    assert not wrong, f"{path} {frame_type}: " + "; ".join(wrong)
