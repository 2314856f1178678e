"""The channel layer: channels-redis' pub/sub layer, plus one call for a batch of frames.

Each server process subscribes (one Redis connection) to the groups its sockets joined; a
frame to a group is one PUBLISH, relayed by Redis to the processes that have members. Unlike
the core layer there is no per-channel list to fill and poll, and no capacity at which frames
are silently dropped. Delivery is not a guarantee either way: clients fill gaps from the
database by ``seq`` (PROTOCOL.md).

``group_send_many`` sends frames, each to several groups, in one pipelined round trip per
Redis shard, serialising each frame once: the engine's publisher (conversations.events) hands
it every frame that committed while the previous batch was on the wire."""

from __future__ import annotations

from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer


class PubSubChannelLayer(RedisPubSubChannelLayer):
    async def group_send_many(self, sends: list[tuple[list[str], dict[str, Any]]]) -> None:
        layer = self._get_layer()
        pipelines: dict[Any, Any] = {}
        for groups, message in sends:
            data = self.serialize(message)
            for group in groups:
                channel = layer._get_group_channel_name(group)
                shard = layer._get_shard(channel)
                pipeline = pipelines.get(shard)
                if pipeline is None:
                    shard._ensure_redis()
                    pipeline = pipelines[shard] = shard._redis.pipeline(transaction=False)
                pipeline.publish(channel, data)
        for pipeline in pipelines.values():
            await pipeline.execute()
