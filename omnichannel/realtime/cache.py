"""Django's Redis cache with one client, so one connection pool, per process.

Under ASGI ``django.core.cache.caches`` is local to each request's context, so every request
builds a new cache object, and Django's Redis cache object builds its own client and pool:
each request that touched the cache (every throttled API call) opened a new TCP connection
to Redis and checked its health before its first command (docs/decisions.md, "Django's Redis
cache opened a connection per request"). The client here is shared by every cache object of the
process that has the same settings; redis-py's pools are thread-safe, and a pool used after a
fork (Celery's workers) starts over in the child."""

from __future__ import annotations

import threading

from django.core.cache.backends import redis
from django.utils.functional import cached_property

_clients: dict[str, redis.RedisCacheClient] = {}
_lock = threading.Lock()


class RedisCache(redis.RedisCache):
    @cached_property
    def _cache(self) -> redis.RedisCacheClient:
        key = repr((self._class, self._servers, sorted(self._options.items())))
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = self._class(self._servers, **self._options)
        return client
