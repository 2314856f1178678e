"""The channel layer: channels-redis' pub/sub layer, plus inboxes and one call for a batch of
frames.

Each server process subscribes (one Redis connection) to the groups its sockets joined; a
frame to a group is one PUBLISH, relayed by Redis to the processes that have members. Unlike
the core layer there is no per-channel list to fill and poll, and no capacity at which frames
are silently dropped. Delivery is not a guarantee either way: clients fill gaps from the
database by ``seq`` (docs/protocol.md).

``new_inbox`` gives a consumer of this process a channel name for its groups without what
``new_channel`` costs each consumer: a Redis subscription of its own, an ``asyncio.Queue``, a
task waiting on it, and a decoding of every group event per member. The layer's reader hands a
group event, decoded once, straight to each local member's callback (docs/decisions.md,
"Sockets without a channel of their own"). An inbox only receives group events: ``send`` to its
name from another process reaches nobody, and nothing here uses ``send``.

``group_send_many`` sends frames, each to several groups, in one script call per Redis shard
(its PUBLISHes in order), serialising each frame once: the engine's publisher
(conversations.events) hands it every frame that committed while the previous batch was on the
wire."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer
from redis.exceptions import NoScriptError


class _Inbox:
    """Stands where the pub/sub layer keeps a channel's queue: its reader calls ``put_nowait``
    with the raw bytes of each group event for a member channel."""

    __slots__ = ("decode", "deliver")

    def __init__(self, decode: Callable[[bytes], dict], deliver: Callable[[dict], None]) -> None:
        self.decode = decode
        self.deliver = deliver

    def put_nowait(self, data: bytes) -> None:
        self.deliver(self.decode(data))


class PubSubChannelLayer(RedisPubSubChannelLayer):
    # (bytes, event) of the last group event decoded: one tuple, so that loops of other threads
    # sharing this layer never see the bytes of one event beside the dict of another.
    _last: tuple[bytes | None, Any] = (None, None)

    def new_inbox(self, deliver: Callable[[dict[str, Any]], None]) -> str:
        """A channel name for ``group_add``, in this process only; ``deliver(event)`` is called
        on the event loop, in order, for every event sent to a group it belongs to. The event
        dict is shared by every local member: read it, never change it."""
        layer = self._get_layer()
        name = f"{layer.prefix}inbox.{uuid.uuid4().hex}"
        layer.channels[name] = _Inbox(self._decode_once, deliver)
        return name

    def close_inbox(self, name: str) -> None:
        """Nothing more reaches ``name``; its group memberships are the consumer's to discard."""
        self._get_layer().channels.pop(name, None)

    def _decode_once(self, data: bytes) -> dict[str, Any]:
        # The reader hands every member the same bytes object in a row: decode it once.
        last = self._last
        if last[0] is data:
            return last[1]
        message = self.deserialize(data)
        self._last = (data, message)
        return message

    async def group_send_many(self, sends: list[tuple[list[str], dict[str, Any]]]) -> None:
        layer = self._get_layer()
        batches: dict[Any, list[Any]] = {}
        for groups, message in sends:
            data = self.serialize(message)
            for group in groups:
                channel = layer._get_group_channel_name(group)
                batches.setdefault(layer._get_shard(channel), []).extend((channel, data))
        for shard, args in batches.items():
            shard._ensure_redis()
            await _publish_all(shard._redis, args)


# Every PUBLISH of a batch, in order, in one command: a pipeline of PUBLISHes costs the client
# a command to pack and a reply to parse per frame and group (about seven per assignment, three
# per message); one script call costs one of each per batch. Redis runs the script's PUBLISHes
# one after the other, as it ran the pipeline's.
_PUBLISH_ALL = "for i = 1, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end"
_PUBLISH_ALL_SHA = hashlib.sha1(_PUBLISH_ALL.encode()).hexdigest()  # noqa: S324 - Redis' script id


async def _publish_all(redis, args: list[Any]) -> None:
    """``PUBLISH channel data`` for each (channel, data) pair of ``args``, in order."""
    try:
        await redis.evalsha(_PUBLISH_ALL_SHA, 0, *args)
    except NoScriptError:  # a Redis that has not seen the script (restarted, flushed): nothing ran
        await redis.eval(_PUBLISH_ALL, 0, *args)
