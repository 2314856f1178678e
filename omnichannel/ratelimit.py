"""Sliding-window rate limits in Redis, shared by every socket and server process.

A sorted set per key holds the instants of recent hits; a hit is allowed while fewer than
``limit`` remain within ``window`` seconds. Exact (no fixed-window edge bursts)."""

from __future__ import annotations

import time
import uuid
from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=1)
def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)


def allow(key: str, limit: int, window: float) -> bool:
    now = time.time()
    name = f"omnichannel:rate:{key}"
    member = uuid.uuid4().hex
    pipe = _client().pipeline(transaction=True)
    pipe.zremrangebyscore(name, 0, now - window)
    pipe.zcard(name)
    pipe.zadd(name, {member: now})
    pipe.expire(name, int(window) + 1)
    _removed, count, _added, _expiry = pipe.execute()
    if count >= limit:
        _client().zrem(name, member)  # refused hits do not count
        return False
    return True
