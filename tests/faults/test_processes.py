"""Faults of the processes and services under a running chat: each test breaks one thing while
customers and agents exchange messages, then checks that every seq reached both sides exactly
once, every message was stored once and acknowledged, and no agent is over capacity
(tests/faults/chat.py). The processes are the production setup's (tests/faults/stack.py)."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.chat import Chat

pytestmark = pytest.mark.timeout(300)

CUSTOMERS, AGENTS, RATE = 40, 4, 40


def assert_nothing_lost(chat: Chat) -> None:
    verdict = chat.verdict()
    assert verdict == {key: [] for key in verdict}, (verdict, chat.stack.logs())


async def test_kill_9_of_a_web_worker_mid_stream_loses_nothing(stack):
    """Broke: SIGKILL to one of two uvicorn workers while half the sockets were on it.
    Verified: its clients reconnect to the survivor and then to the restarted worker, resume
    from after_seq (customers) or REST (agents); every seq on both sides exactly once, every
    message stored once, nothing unacknowledged."""
    ports = [stack.start_web(), stack.start_web()]
    chat = Chat(stack, stack.fixture("latency", "--customers", str(CUSTOMERS), "--agents", str(AGENTS)), ports)
    await chat.connect()
    try:
        await chat.talk(3, RATE)
        stack.kill_web(ports[0])
        await chat.talk(3, RATE)
        await asyncio.to_thread(stack.start_web, ports[0])
        await chat.talk(3, RATE)
        await chat.settle()
    finally:
        await chat.close()
    assert chat.ledger.reconnects >= CUSTOMERS // 2, "the kill did not hit the sockets it was meant to"
    assert_nothing_lost(chat)


async def test_redis_restarted_mid_stream_loses_nothing_and_the_sweep_assigns_what_queued_meanwhile(stack):
    """Broke: SIGKILL to Redis (channel layer, rate limits, Celery broker; it keeps nothing on
    disk, so group memberships and queued tasks vanish), restarted 2 s later on the same port,
    while customers and agents talked and five conversations queued.
    Verified: sends during the outage get `unavailable` and go again; afterwards the sockets'
    groups are joined again (messages arrive live, not only by gap filling); every seq on both
    sides exactly once, every message stored once; the queued conversations are assigned by the
    periodic sweep, nobody over capacity; the worker and its beat survived."""
    stack.env["SWEEP_INTERVAL"] = "1"
    ports = [stack.start_web(), stack.start_web()]
    stack.start_worker("w1", beat=True)
    chat = Chat(stack, stack.fixture("latency", "--customers", str(CUSTOMERS), "--agents", str(AGENTS)), ports)
    await chat.connect()
    try:
        await chat.talk(2, RATE)
        stack.redis.crash()
        queued = await asyncio.to_thread(
            stack.fixture, "assignment", "--conversations", "5", "--agents", "1", "--keep-ongoing"
        )
        # An agent becomes available during the outage: the drain it asks for cannot be enqueued.
        status = await asyncio.to_thread(
            stack.patch_me, ports[0], queued["agents"][0]["token"], {"presence": "available"}
        )
        await chat.talk(2, RATE)
        await asyncio.to_thread(stack.redis.start)
        await chat.talk(4, RATE)
        live_from = len(chat.sent)
        await chat.talk(2, RATE)
        await chat.settle()
        await asyncio.to_thread(stack.wait_until_active, queued["conversation_ids"], 60)
    finally:
        await chat.close()
    assert status == 200
    assert chat.ledger.retryable_errors > 0, "no send met the outage"
    assert chat.not_delivered_live(chat.sent[live_from:]) == []
    assert_nothing_lost(chat)
    assert all(process.poll() is None for process in stack.workers.values()), stack.logs()


async def test_postgresql_restarted_mid_stream_answers_unavailable_then_resumes(stack):
    """Broke: an immediate PostgreSQL shutdown (every backend killed, as in a crash) for 2 s,
    then a start with crash recovery, while customers and agents talked.
    Verified: sends during the outage get an `unavailable` error frame (no hang, no dropped
    socket: nobody reconnects); afterwards sends succeed on the same sockets; every seq on both
    sides exactly once, every message stored once."""
    ports = [stack.start_web(), stack.start_web()]
    chat = Chat(stack, stack.fixture("latency", "--customers", str(CUSTOMERS), "--agents", str(AGENTS)), ports)
    await chat.connect()
    try:
        await chat.talk(2, RATE)
        await asyncio.to_thread(stack.postgres.crash)
        await chat.talk(2, RATE)
        await asyncio.to_thread(stack.postgres.start)
        await chat.talk(4, RATE)
        await chat.settle()
    finally:
        await chat.close()
    assert chat.ledger.retryable_errors > 0, "no send met the outage"
    assert chat.ledger.reconnects == 0 and chat.ledger.closed == [], chat.ledger.closed
    assert_nothing_lost(chat)
