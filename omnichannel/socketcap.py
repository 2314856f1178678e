"""How many WebSockets each client address holds open, across every server process, so that
one address holds at most ``MAX_SOCKETS_PER_ADDRESS`` (settings; 0: no cap). The consumers
take a place before anything else on a new socket and give it back however the socket ends
(``conversations.consumers.ProtocolConsumer``); the socket over the cap is closed with 4429.

In Redis, per address, a hash of how many of its sockets each server process holds
(``omnichannel:sockets:<address>``: process → count), and a sorted set of the processes'
last heartbeats (``omnichannel:sockets:processes``). Only processes that beat within ``TTL``
count: the sockets of a process that was killed are forgotten ``TTL`` seconds later, not
held against the address for ever. A live process beats every ``HEARTBEAT`` seconds while it
holds sockets, writing its own counts again (its memory is the truth for its own sockets), so a
lost decrement heals too.

Costs: a new socket, one Lua call (the sum of the live processes' counts and, when under the
cap, one more); a socket that ends, one call; a process, one call every ``HEARTBEAT`` seconds
with all its addresses. Nothing on the message path. While Redis is unreachable sockets are
let in (as the REST throttles do) and counted in memory, and the heartbeat writes them once
Redis is back. The processes' clocks are compared (NTP keeps them well within ``TTL``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
import uuid
import weakref

from redis.exceptions import RedisError

from omnichannel import ratelimit

logger = logging.getLogger(__name__)

TTL = 60.0  # seconds: a process that has not beaten for this long is counted as gone
HEARTBEAT = 20.0  # seconds between a process's heartbeats, while it holds sockets
PROCESSES = "omnichannel:sockets:processes"
# The clock of the heartbeats (tests replace it, so that nothing waits).
clock = time.time

TAKE = """
local now, ttl, limit, me = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
redis.call('ZADD', KEYS[2], now, me)
local held = redis.call('HGETALL', KEYS[1])
local open = 0
for i = 1, #held, 2 do
    local beat = redis.call('ZSCORE', KEYS[2], held[i])
    if beat and tonumber(beat) > now - ttl then
        open = open + math.max(0, tonumber(held[i + 1]))
    else
        redis.call('HDEL', KEYS[1], held[i])
    end
end
if open >= limit then
    return 0
end
redis.call('HINCRBY', KEYS[1], me, 1)
redis.call('EXPIRE', KEYS[1], math.ceil(ttl))
return 1
"""

GIVE_BACK = """
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1
"""

BEAT = """
local now, ttl, me = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
redis.call('ZADD', KEYS[1], now, me)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
for i = 2, #KEYS do
    redis.call('HSET', KEYS[i], me, ARGV[i + 2])
    redis.call('EXPIRE', KEYS[i], math.ceil(ttl))
end
return 1
"""


def _key(address: str) -> str:
    return f"omnichannel:sockets:{address}"


class SocketCounts:
    """One server process's (one event loop's) open sockets per address, mirrored in Redis."""

    def __init__(self, client, process: str | None = None) -> None:
        self.process = process or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.counts: dict[str, int] = {}
        self._take = client.register_script(TAKE)
        self._give_back = client.register_script(GIVE_BACK)
        self._beat = client.register_script(BEAT)
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()

    async def take(self, address: str, limit: int) -> bool:
        """Counts a new socket of ``address``; False (and nothing counted) when the address
        already holds ``limit`` sockets in all processes together."""
        try:
            allowed = await self._take(keys=[_key(address), PROCESSES], args=[clock(), TTL, limit, self.process])
        except RedisError as error:
            logger.warning("socket cap not checked, Redis is unreachable: %s", error)
            allowed = True
        if not allowed:
            return False
        self.counts[address] = self.counts.get(address, 0) + 1
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(HEARTBEAT, self._beat_soon)
        return True

    async def give_back(self, address: str) -> None:
        """A socket of ``address`` ended. Counted off in memory at once; Redis is told in a task
        of its own, so a cancelled consumer cannot leave it half done."""
        left = self.counts.get(address, 0) - 1
        if left > 0:
            self.counts[address] = left
        else:
            self.counts.pop(address, None)
        if not self.counts and self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task = asyncio.get_running_loop().create_task(self._tell_redis(address))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await asyncio.shield(task)

    async def _tell_redis(self, address: str) -> None:
        try:
            await self._give_back(keys=[_key(address)], args=[self.process])
        except RedisError as error:  # the next heartbeat writes the count
            logger.info("a socket's end not counted in Redis yet: %s", error)

    async def beat(self) -> None:
        """Says this process is alive and writes its counts."""
        addresses = list(self.counts)
        await self._beat(
            keys=[PROCESSES, *map(_key, addresses)],
            args=[clock(), TTL, self.process, *(self.counts[a] for a in addresses)],
        )

    def _beat_soon(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self._beat_and_again())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _beat_and_again(self) -> None:
        try:
            await self.beat()
        except RedisError as error:
            logger.info("socket counts heartbeat failed, retrying: %s", error)
        if self.counts and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(HEARTBEAT, self._beat_soon)


_per_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def counts() -> SocketCounts:
    """This event loop's counts (a server process has one loop; each test has its own)."""
    loop = asyncio.get_running_loop()
    found = _per_loop.get(loop)
    if found is None:
        found = _per_loop[loop] = SocketCounts(ratelimit.async_client())
    return found


def address_key(address: str | None) -> str:
    """The address a socket is counted under (no peer address: all such sockets together),
    interned: the sockets of one address keep one string."""
    return sys.intern(address or "unknown")
