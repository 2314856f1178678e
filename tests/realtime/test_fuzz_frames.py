"""Fuzzing both sockets with hypothesis-generated frames: arbitrary JSON values, protocol frames
with every field of the wrong type, huge, unicode and lone-surrogate strings, text that is not
JSON, binary frames. Every frame is answered with an error frame carrying a stable code of
docs/protocol.md (or a valid answer, or, for typing, nothing); the socket stays open and still
works (a real message goes through after every example); nothing is logged at ERROR.

One authenticated socket per test takes all its examples (the per-socket frame budget and the
per-customer message limit are lifted: the floods have their own tests). Bounded for CI
(``max_examples``; the "ci" hypothesis profile makes the examples the same on every run)."""

from __future__ import annotations

import itertools
import json
import logging

import pytest
from channels.db import database_sync_to_async as in_db
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.consumers import AgentConsumer
from conversations import consumers, services
from conversations.consumers import WidgetConsumer
from omnichannel.limits import MAX_FRAME
from tests.factories import api_key
from tests.realtime.conftest import customer_token

pytestmark = pytest.mark.django_db(transaction=True)

# docs/protocol.md's codes, less "unavailable": nothing is down here,
# so an unavailable answer would be bad input mistaken for an outage.
SOCKET_CODES = {
    "invalid_token",
    "authentication_required",
    "forbidden",
    "origin_not_allowed",
    "not_found",
    "invalid_transition",
    "customer_cannot_end",
    "outside_operating_hours",
    "body_empty",
    "body_too_long",
    "bad_frame",
    "rate_limited",
    "validation_error",
    "agent_unavailable",
}
ANSWER_TYPES = {"error", "message", "conversation", "typing", "notification", "agent", "queue"}
FIELDS = ["type", "client_id", "body", "conversation_id", "token", "after_seq"]
TYPES = ["message.send", "typing", "conversation.end", "ready", "message", "", "MESSAGE.SEND"]

lone_surrogates = st.sampled_from(["\ud800", "\udfff", "a\ud83d", "\ude00b", "\ud83d\ud83d"])
huge = st.builds(lambda char, n: char * n, st.sampled_from(["x", "é", "€", "😀", " "]), st.integers(3990, 12_000))
strings = st.one_of(
    st.text(max_size=50),
    st.text(st.characters(codec="utf-8"), max_size=20),
    lone_surrogates,
    huge,
    st.sampled_from(["\x00", "a\x00b", "   ", "\u200b", "\ufeff", "‮", "𝕏" * 3, "null", "0", "-1"]),
)
numbers = st.one_of(
    st.integers(),
    st.integers(-(2**64), 2**64),
    st.sampled_from([0, 1, -1, 2**31, 2**63, 2**63 - 1, 10**30]),
    st.floats(),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, strings)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(strings, inner, max_size=4), max_leaves=12
)


@st.composite
def protocol_like(draw, conversation_id: int | None = None):
    """A frame of a known (or nearly known) type whose fields hold anything."""
    frame = {"type": draw(st.sampled_from(TYPES) | strings)}
    for field in draw(st.lists(st.sampled_from(FIELDS[1:]), unique=True)):
        frame[field] = draw(json_values)
    if conversation_id is not None and draw(st.booleans()):
        frame["conversation_id"] = conversation_id
    return frame


def encoded(frame) -> st.SearchStrategy:
    return st.sampled_from([True, False]).map(lambda ascii_: json.dumps(frame, ensure_ascii=ascii_))


def is_renewal(wire) -> bool:
    """An ``auth`` frame on an authenticated socket is a token renewal: a refused one closes the
    socket (4401, test_access_ends), which would end the one socket every example shares."""
    try:
        parsed = json.loads(wire) if isinstance(wire, str) else None
    except (ValueError, RecursionError):
        return False
    return isinstance(parsed, dict) and parsed.get("type") == "auth"


def frames(conversation_id: int | None = None) -> st.SearchStrategy:
    """What goes on the wire: text (JSON or not) or bytes; never a renewal (see is_renewal)."""
    as_json = (
        st.one_of(protocol_like(conversation_id), json_values).flatmap(encoded).filter(lambda w: not is_renewal(w))
    )
    return st.one_of(
        as_json,
        as_json,
        st.text(max_size=200),
        st.binary(max_size=200),
        st.integers(MAX_FRAME - 2, MAX_FRAME + 4096).map(lambda n: "[" + "1," * (n // 2) + "1]"),
        st.integers(1, 40_000).map(lambda depth: "[" * depth + "]" * depth),
        st.sampled_from(["", "{", "}", '{"type":', "NaN", "[]", '{"type": null}', '{"type": "typing"'] * 1),
    )


@pytest.fixture
def unlimited(monkeypatch):
    for consumer in (WidgetConsumer, AgentConsumer):
        monkeypatch.setattr(consumer, "frame_burst", 10**9)
    monkeypatch.setattr(consumers, "MESSAGE_RATE", (10**9, 10))


@pytest.fixture
def errors_logged(caplog):
    caplog.set_level(logging.WARNING)
    yield lambda: [r for r in caplog.records if r.levelno >= logging.ERROR]


async def send_raw(s, wire) -> None:
    """As the server hands it over (send_to refuses empty frames, which clients can send)."""
    key = "bytes" if isinstance(wire, bytes) else "text"
    await s.communicator.send_input({"type": "websocket.receive", key: wire})


async def answers_then_probe(s, wire, probe: dict) -> list[dict]:
    """Sends the fuzzed frame, then a real message; returns what came before the probe's echo."""
    await send_raw(s, wire)
    await s.send(probe)
    before = []
    while True:
        frame = await s.next()
        if frame["type"] == "message" and frame["message"]["client_id"] == probe["client_id"]:
            return before
        before.append(frame)


def check(wire, answers: list[dict]) -> None:
    for frame in answers:
        assert frame.get("type") in ANSWER_TYPES, frame
        if frame["type"] == "error":
            assert frame["code"] in SOCKET_CODES and isinstance(frame["detail"], str) and frame["detail"], frame
    try:
        parsed = json.loads(wire) if isinstance(wire, str) else None
    except (ValueError, RecursionError):
        parsed = None
    if not isinstance(parsed, dict) or parsed.get("type") not in ("message.send", "typing", "conversation.end"):
        # Not a frame the consumer acts on: exactly one answer, a bad_frame.
        errors = [f for f in answers if f["type"] == "error"]
        assert [e["code"] for e in errors] == ["bad_frame"], (wire[:200], answers)


@pytest.fixture
async def widget_socket(socket, persistent, unlimited):
    s = socket(f"/ws/widget/{persistent.widget_key}/")
    assert await s.connect()
    await s.send({"type": "auth", "token": customer_token(persistent.authentication_setting, sub="fuzz")})
    assert (await s.next())["type"] == "ready"
    return s


@pytest.fixture
async def agent_socket(socket, persistent, alice, customer, unlimited):
    def world():
        conversation = services.customer_message_send(widget=persistent, customer=customer, body="Hi").conversation
        conversation.refresh_from_db()
        assert conversation.agent_id == alice.pk  # assigned on the spot: alice is the queue's available agent
        return conversation.pk, api_key(alice.user)

    conversation_id, key = await in_db(world)()
    s = socket("/ws/agent/", origin="http://testserver")
    assert await s.connect()
    await s.send({"type": "auth", "token": key})
    await s.until(lambda f: f["type"] == "ready")
    return s, conversation_id


FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
probe_ids = itertools.count()


@FUZZ
@given(wire=frames())
async def test_fuzzed_frames_on_the_widget_socket_get_a_stable_answer_and_it_keeps_working(
    widget_socket, errors_logged, wire
):
    probe = {"type": "message.send", "client_id": f"probe-{next(probe_ids)}", "body": "still here"}
    check(wire, await answers_then_probe(widget_socket, wire, probe))
    assert errors_logged() == []


@FUZZ
@given(data=st.data())
async def test_fuzzed_frames_on_the_agent_socket_get_a_stable_answer_and_it_keeps_working(
    agent_socket, errors_logged, data
):
    s, conversation_id = agent_socket
    wire = data.draw(frames(conversation_id), label="wire")
    probe = {
        "type": "message.send",
        "conversation_id": conversation_id,
        "client_id": f"probe-{next(probe_ids)}",
        "body": "still here",
    }
    check(wire, await answers_then_probe(s, wire, probe))
    assert errors_logged() == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["widget", "agent"]), token=json_values, after_seq=json_values)
async def test_fuzzed_auth_frames_are_refused_with_a_stable_code_and_closed_4401(
    socket, persistent, errors_logged, kind, token, after_seq
):
    path = f"/ws/widget/{persistent.widget_key}/" if kind == "widget" else "/ws/agent/"
    s = socket(path, origin="http://testserver")
    assert await s.connect()
    await s.send(json.dumps({"type": "auth", "token": token, "after_seq": after_seq}))
    answer = await s.next()
    assert answer["type"] == "error" and answer["code"] in SOCKET_CODES, answer
    if answer["code"] == "bad_frame":  # not read as an auth frame at all: still open, still waiting
        await s.send({"type": "auth", "token": "wrong"})
        answer = await s.next()
    assert answer["code"] in ("invalid_token", "authentication_required"), answer
    assert await s.closed() == consumers.CLOSE_UNAUTHENTICATED
    assert errors_logged() == []
