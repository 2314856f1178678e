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
