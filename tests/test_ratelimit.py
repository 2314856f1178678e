"""The sliding-window limiter: exact within any window, across processes (Redis)."""

from __future__ import annotations

import uuid

import time_machine

from omnichannel import ratelimit


def test_allows_the_limit_then_refuses_within_any_window():
    key = uuid.uuid4().hex
    with time_machine.travel(1_000_000.9, tick=False) as clock:
        assert all(ratelimit.allow(key, 3, 10) for _ in range(3))
        assert not ratelimit.allow(key, 3, 10)
        clock.shift(0.2)  # a fixed window would have rolled over at 1_000_010 / 10
        assert not ratelimit.allow(key, 3, 10)
        clock.shift(10)
        assert ratelimit.allow(key, 3, 10)


def test_refused_hits_do_not_extend_the_ban():
    key = uuid.uuid4().hex
    with time_machine.travel(2_000_000.0, tick=False) as clock:
        assert ratelimit.allow(key, 1, 5)
        for _ in range(5):
            assert not ratelimit.allow(key, 1, 5)
            clock.shift(0.5)
        clock.shift(3)
        assert ratelimit.allow(key, 1, 5)


async def test_the_event_loop_version_counts_the_same_hits():
    """Sockets check on their event loop (aallow); the count is the one every process shares."""
    key = uuid.uuid4().hex
    with time_machine.travel(3_000_000.0, tick=False):
        assert await ratelimit.aallow(key, 2, 10)
        assert ratelimit.allow(key, 2, 10)
        assert not await ratelimit.aallow(key, 2, 10)
        assert not ratelimit.allow(key, 2, 10)


async def test_a_burst_larger_than_the_connection_pool_waits_instead_of_failing():
    """Seen in the benchmark: after a stall, more sockets checked at once than the client's pool
    held, and redis-py raised "Too many connections"."""
    import asyncio

    checks = [ratelimit.aallow(uuid.uuid4().hex, 5, 10) for _ in range(150)]
    try:
        assert all(await asyncio.gather(*checks))
    finally:  # this loop's client and its pool go with the test (left open, they broke a later test)
        await ratelimit._async_script().registered_client.aclose(close_connection_pool=True)
