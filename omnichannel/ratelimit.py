"""Sliding-window rate limits in Redis, shared by every socket and server process.

A sorted set per key holds the instants of recent hits; a hit is allowed while fewer than
``limit`` remain within ``window`` seconds. Exact (no fixed-window edge bursts). One Lua
script does the whole check in one round trip, atomically; consumers call ``aallow`` on their
event loop (no thread), everything else ``allow``.

``TokenBucket`` is the other kind: in memory, for one socket's own frames, so the hot path
makes no round trip at all."""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from functools import lru_cache

import redis
import redis.asyncio
from django.conf import settings

SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, tonumber(ARGV[1]) - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 1)
return 1
"""


def _redis_key(key: str) -> str:
    return f"omnichannel:rate:{key}"


def _args(key: str, limit: int, window: float) -> tuple[list[str], list]:
    return [_redis_key(key)], [time.time(), window, limit, uuid.uuid4().hex]


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    """One thread-safe client (and pool) per process for the synchronous callers."""
    return redis.Redis.from_url(url, socket_timeout=5)


@lru_cache(maxsize=4)
def _script(url: str):
    return _client(url).register_script(SCRIPT)


def allow(key: str, limit: int, window: float) -> bool:
    keys, args = _args(key, limit, window)
    return bool(_script(settings.REDIS_URL)(keys=keys, args=args))


def _seconds_left(oldest: list, window: float) -> float:
    return max(0.0, oldest[0][1] + window - time.time()) if oldest else 0.0


def retry_after(key: str, window: float) -> float:
    """Seconds until the oldest hit of ``key`` leaves its window: when a refused caller may try
    again. (A second round trip, made only after a refusal.)"""
    return _seconds_left(_client(settings.REDIS_URL).zrange(_redis_key(key), 0, 0, withscores=True), window)


ASYNC_POOL_SIZE = 20
_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_async_scripts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def async_client() -> redis.asyncio.Redis:
    """One client per event loop (a client's connections belong to the loop that opened them),
    shared by the consumers' Redis calls (these limits, omnichannel.socketcap)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        # A bounded pool that waits for a free connection: a burst of sockets checking at once
        # (after a stall, say) queues for a moment instead of failing with "Too many connections".
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            settings.REDIS_URL, max_connections=ASYNC_POOL_SIZE, timeout=5, socket_timeout=5
        )
        client = _async_clients[loop] = redis.asyncio.Redis(connection_pool=pool)
    return client


def _async_script():
    loop = asyncio.get_running_loop()
    script = _async_scripts.get(loop)
    if script is None:
        script = _async_scripts[loop] = async_client().register_script(SCRIPT)
    return script


async def aallow(key: str, limit: int, window: float) -> bool:
    keys, args = _args(key, limit, window)
    return bool(await _async_script()(keys=keys, args=args))


async def aretry_after(key: str, window: float) -> float:
    """``retry_after`` on the event loop."""
    client = _async_script().registered_client
    return _seconds_left(await client.zrange(_redis_key(key), 0, 0, withscores=True), window)


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; one per hit. In memory and for one
    owner (a socket): a few float operations, no lock, no I/O."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = float(burst), now

    def take(self, now: float) -> float:
        """0.0 when a token was there (and is now used); otherwise the seconds until one is."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens > 1 - 1e-9:  # a caller that waited the time this returned gets its token
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate
