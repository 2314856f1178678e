"""The contract of the fast real-time stack (omnichannel/realtime/) with the libraries it reaches
into: every private or internal symbol of uvicorn, Channels, channels-redis, asgiref and Django
it uses, subclasses, replaces or relies on, in one list. An upgrade that removes or changes one
fails here, naming the symbol, the library's version and the module of ours that uses it, before
the fast stack breaks in production; until the module is fixed, OMNICHANNEL_STOCK_REALTIME=1
runs the same application on the stock stack (docs/decisions.md).

Runs on both stacks: whichever runs, the fast one must still fit the installed libraries."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from omnichannel.realtime.layers import _Inbox
from omnichannel.realtime.wsprotocol import EventQueue, Flag

UVICORN_WS = "uvicorn.protocols.websockets.websockets_sansio_impl"
WSPROTOCOL = "omnichannel/realtime/wsprotocol.py"
LAYERS = "omnichannel/realtime/layers.py"
CONSUMER = "omnichannel/realtime/consumer.py"
HTTP = "omnichannel/realtime/http.py"
CACHE = "omnichannel/realtime/cache.py"


@dataclass(frozen=True)
class Private:
    """``module`` + ``path`` (dotted attributes) must exist; ``on`` builds the object ``path``
    starts from when it is an attribute of instances (set in ``__init__``, not on the class)."""

    distribution: str
    module: str
    path: str
    used_by: str
    why: str
    on: Callable[[], Any] | None = None


@dataclass(frozen=True)
class Relied:
    """Something the library's code does that ours relies on: ``check()`` returns what is wrong,
    or an empty string."""

    distribution: str
    what: str
    used_by: str
    check: Callable[[], str]


def _uvicorn_protocol():
    import asyncio

    import uvicorn
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from uvicorn.server import ServerState

    async def app(scope, receive, send):  # pragma: no cover - never called
        pass

    config = uvicorn.Config(app, ws="websockets-sansio", lifespan="off")
    config.load()
    loop = asyncio.new_event_loop()
    try:
        return WebSocketsSansIOProtocol(config, ServerState(), {}, _loop=loop)
    finally:
        loop.close()


def _loop_layer():
    from channels_redis.pubsub import RedisPubSubLoopLayer

    return RedisPubSubLoopLayer(hosts=["redis://127.0.0.1:6379/0"], prefix="contract")


def _shard():
    return _loop_layer()._shards[0]


def _async_to_sync():
    from asgiref.sync import AsyncToSync

    async def coroutine():  # pragma: no cover - never called
        pass

    return AsyncToSync(coroutine)


def _django_handler():
    from django.core.handlers.asgi import ASGIHandler

    return ASGIHandler()


def _django_redis_cache():
    from django.core.cache.backends.redis import RedisCache

    return RedisCache("redis://127.0.0.1:6379/0", {})


PRIVATE = [
    # uvicorn: omnichannel/realtime/wsprotocol.py subclasses its sans-I/O protocol and swaps
    # what each connection holds.
    Private("uvicorn", UVICORN_WS, "WebSocketsSansIOProtocol",
            WSPROTOCOL, "the protocol WebSocketProtocol subclasses"),
    Private("uvicorn", UVICORN_WS, "WebSocketsSansIOProtocol.start_keepalive",
            WSPROTOCOL, "called once right after the accepting response: where the handshake is dropped"),
    Private("uvicorn", UVICORN_WS, "queue",
            WSPROTOCOL, "the connection's asyncio.Queue of ASGI events, replaced by EventQueue", _uvicorn_protocol),
    Private("uvicorn", UVICORN_WS, "writable",
            WSPROTOCOL, "the connection's asyncio.Event for back-pressure, replaced by Flag", _uvicorn_protocol),
    # channels-redis: omnichannel/realtime/layers.py (inboxes, group_send_many)
    Private("channels-redis", "channels_redis.pubsub", "RedisPubSubChannelLayer._get_layer",
            LAYERS, "the layer of the running loop, for new_inbox, close_inbox and group_send_many"),
    Private("channels-redis", "channels_redis.pubsub", "RedisPubSubLoopLayer._get_group_channel_name",
            LAYERS, "the Redis channel of a group, for group_send_many"),
    Private("channels-redis", "channels_redis.pubsub", "RedisPubSubLoopLayer._get_shard",
            LAYERS, "the shard of a Redis channel, for group_send_many"),
    Private("channels-redis", "channels_redis.pubsub", "prefix",
            LAYERS, "the loop layer's prefix, for an inbox's name", _loop_layer),
    Private("channels-redis", "channels_redis.pubsub", "channels",
            LAYERS, "the loop layer's channel -> queue dict, where an inbox stands in for a queue", _loop_layer),
    Private("channels-redis", "channels_redis.pubsub", "_shards",
            LAYERS, "(through _get_shard) the loop layer's shards", _loop_layer),
    Private("channels-redis", "channels_redis.pubsub", "RedisSingleShardConnection._ensure_redis",
            LAYERS, "connects a shard before group_send_many's script call"),
    Private("channels-redis", "channels_redis.pubsub", "_redis",
            LAYERS, "a shard's Redis client, for group_send_many's script call", _shard),
    Private("channels-redis", "channels_redis.pubsub", "RedisSingleShardConnection._receive_message",
            LAYERS, "the reader that hands an inbox each group event"),
    # Channels: omnichannel/realtime/consumer.py re-implements AsyncConsumer.__call__ and dispatch.
    Private("channels", "channels.consumer", "get_handler_name",
            CONSUMER, "a message's handler name, as Channels' dispatch finds it"),
    Private("channels", "channels.consumer", "AsyncConsumer.channel_layer_alias",
            CONSUMER, "which layer FastLoop.__call__ takes"),
    Private("channels", "channels.db", "aclose_old_connections",
            CONSUMER, "the hop before every handler that FastLoop.dispatch leaves out"),
    Private("channels", "channels.generic.websocket", "AsyncWebsocketConsumer.websocket_disconnect",
            CONSUMER, "ends the consumer with StopConsumer, which FastLoop.__call__ catches"),
    # asgiref: omnichannel/realtime/http.py
    Private("asgiref", "asgiref.sync", "awaitable",
            HTTP, "the async callable Django's sync chain wraps with async_to_sync", _async_to_sync),
    Private("asgiref", "asgiref.sync", "ThreadSensitiveContext",
            HTTP, "each request's context, with the reused request thread as its executor"),
    # Django: omnichannel/realtime/http.py subclasses its ASGI handler; cache.py its Redis cache.
    Private("django", "django.core.handlers.asgi", "ASGIHandler.handle",
            HTTP, "what ASGIHandler.__call__ runs inside the request's ThreadSensitiveContext"),
    Private("django", "django.core.handlers.asgi", "ASGIHandler.load_middleware",
            HTTP, "built with is_async=False: the middleware chain as for WSGI"),
    Private("django", "django.core.handlers.asgi", "_middleware_chain",
            HTTP, "the chain load_middleware built, whose async top is unwrapped", _django_handler),
    Private("django", "django.core.cache.backends.redis", "RedisCacheClient",
            CACHE, "the client class shared between cache objects"),
    Private("django", "django.core.cache.backends.redis", "RedisCache._cache",
            CACHE, "the cached client property RedisCache replaces"),
    Private("django", "django.core.cache.backends.redis", "_class",
            CACHE, "the client class a cache object builds", _django_redis_cache),
    Private("django", "django.core.cache.backends.redis", "_servers",
            CACHE, "part of the key of a shared client", _django_redis_cache),
    Private("django", "django.core.cache.backends.redis", "_options",
            CACHE, "part of the key of a shared client", _django_redis_cache),
]  # fmt: skip


def _calls_on(source: str, name: str) -> set[str]:
    """The methods the source calls on ``self.<name>``."""
    return set(re.findall(rf"self\.{name}\.(\w+)", source))


def _missing(calls: set[str], ours: type) -> str:
    missing = sorted(call for call in calls if not hasattr(ours, call))
    return f"calls {missing}, which {ours.__name__} does not have" if missing else ""


def _uvicorn_queue_calls() -> str:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    return _missing(_calls_on(inspect.getsource(WebSocketsSansIOProtocol), "queue"), EventQueue)


def _uvicorn_writable_calls() -> str:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    return _missing(_calls_on(inspect.getsource(WebSocketsSansIOProtocol), "writable"), Flag)


def _uvicorn_handshake_attributes() -> str:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    source = inspect.getsource(WebSocketsSansIOProtocol)
    missing = [name for name in ("request", "response") if not re.search(rf"self\.{name}\s*=", source)]
    return f"no longer keeps self.{' or self.'.join(missing)}" if missing else ""


def _reader_calls() -> str:
    from channels_redis.pubsub import RedisSingleShardConnection

    source = inspect.getsource(RedisSingleShardConnection._receive_message)
    calls = set(re.findall(r"channels\[\w+\]\.(\w+)\(", source))
    if not calls:
        return "no longer hands events to the entries of layer.channels"
    return _missing(calls, _Inbox)


def _consumer_call_attributes() -> str:
    from channels.consumer import AsyncConsumer

    assigned = set(re.findall(r"self\.(\w+)\s*=", inspect.getsource(AsyncConsumer.__call__)))
    # What FastLoop.__call__ sets too; channel_receive only feeds Channels' own loop.
    known = {"scope", "channel_layer", "channel_name", "channel_receive", "base_send"}
    new = sorted(assigned - known)
    return f"now also sets self.{', self.'.join(new)}, which FastLoop.__call__ does not" if new else ""


def _django_call() -> str:
    from django.core.handlers.asgi import ASGIHandler

    source = inspect.getsource(ASGIHandler.__call__)
    wanted = ("ThreadSensitiveContext()", "self.handle(scope, receive, send)")
    changed = [part for part in wanted if part not in source]
    return f"no longer runs {changed} (ASGIHandler.__call__ replaces it)" if changed else ""


def _thread_sensitive_executor() -> str:
    from asgiref.sync import ThreadSensitiveContext

    return "" if "executor" in inspect.signature(ThreadSensitiveContext).parameters else "takes no executor"


def _load_middleware_is_async() -> str:
    from django.core.handlers.base import BaseHandler

    return "" if "is_async" in inspect.signature(BaseHandler.load_middleware).parameters else "takes no is_async"


RELIED = [
    Relied("uvicorn", "WebSocketsSansIOProtocol's use of self.queue", WSPROTOCOL, _uvicorn_queue_calls),
    Relied("uvicorn", "WebSocketsSansIOProtocol's use of self.writable", WSPROTOCOL, _uvicorn_writable_calls),
    Relied("uvicorn", "WebSocketsSansIOProtocol.request and .response", WSPROTOCOL, _uvicorn_handshake_attributes),
    Relied("channels-redis", "RedisSingleShardConnection._receive_message", LAYERS, _reader_calls),
    Relied("channels", "AsyncConsumer.__call__", CONSUMER, _consumer_call_attributes),
    Relied("django", "ASGIHandler.__call__", HTTP, _django_call),
    Relied("asgiref", "ThreadSensitiveContext(executor=...)", HTTP, _thread_sensitive_executor),
    Relied("django", "BaseHandler.load_middleware(is_async=...)", HTTP, _load_middleware_is_async),
]


def _version(distribution: str) -> str:
    return f"{distribution} {importlib.metadata.version(distribution)}"


def _lookup(symbol: Private) -> None:
    target = symbol.on() if symbol.on is not None else importlib.import_module(symbol.module)
    for part in symbol.path.split("."):
        target = getattr(target, part) if not isinstance(target, dict) else target[part]


def test_every_private_symbol_the_fast_real_time_stack_uses_is_still_there():
    broken = []
    for symbol in PRIVATE:
        where = f"{symbol.module}.{symbol.path}" if symbol.on is None else f"{symbol.path} of {symbol.module}'s object"
        try:
            _lookup(symbol)
        except (AttributeError, ImportError, KeyError) as error:
            version = _version(symbol.distribution)
            broken.append(f"{version} no longer has {where}, used by {symbol.used_by}: {symbol.why} ({error})")
    for relied in RELIED:
        try:
            problem = relied.check()
        except (AttributeError, ImportError, OSError, TypeError) as error:
            problem = f"cannot be checked ({error!r})"
        if problem:
            broken.append(f"{_version(relied.distribution)}: {relied.what} {problem}; {relied.used_by} relies on it")
    assert not broken, (
        "The fast real-time stack no longer fits the installed libraries; fix the module named, or run "
        "with OMNICHANNEL_STOCK_REALTIME=1 meanwhile:\n  " + "\n  ".join(broken)
    )


@pytest.mark.parametrize("module", [WSPROTOCOL, LAYERS, CONSUMER, HTTP, CACHE])
def test_the_contract_names_every_module_of_the_fast_stack(module):
    assert any(s.used_by == module for s in PRIVATE), f"{module} is in no entry of PRIVATE"
