"""The consumers' loop: how a socket's frames and its group events reach the consumer's handlers.

``FastLoop`` is Channels' ``AsyncConsumer.__call__`` and ``dispatch`` without a channel of its
own (docs/decisions.md, "Sockets without a channel of their own"); ``StockLoop`` is Channels'
own loop. ``ConsumerLoop`` is the one ``OMNICHANNEL_STOCK_REALTIME`` chooses, and what the
consumers (``conversations.consumers.ProtocolConsumer``) are built on. Both give a consumer the
same things:

- one thing at a time: a frame and the group events never run their handlers side by side,
  and group events keep their order;
- ``_deliver(event)``: an event of the consumer's own (a timer's), dispatched like a group
  event;
- ``_context``: the consumer's context, in which its timers run;
- ``ended()``, awaited however the consumer ends;
- a send to a client that left is no error: the server has queued ``websocket.disconnect``,
  which ends the consumer;
- work the consumer sends to a thread knows the server loop (``serverloop.serving``).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from omnichannel.realtime.serverloop import serving

logger = logging.getLogger(__name__)


class FastLoop(AsyncWebsocketConsumer):
    """Channels' ``AsyncConsumer.__call__`` without a channel of its own: no ``new_channel()``
    (a Redis subscription, a queue and a task waiting on it for every socket), no
    ``await_many_dispatch`` (a second task, and a new task and an ``asyncio.wait`` for every
    frame and every group event). The ASGI server's task reads the socket; group events arrive
    through the layer's inbox (``_deliver``, ``omnichannel.realtime.layers``) and are
    dispatched by a task that lives only while some are waiting."""

    async def __call__(self, scope, receive, send) -> None:
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = self.channel_layer.new_inbox(self._deliver)
        self.base_send = send
        self._events: deque[dict[str, Any]] | None = None  # made when the first event comes
        self._drainer: asyncio.Task | None = None
        self._handling = False  # a frame from the socket is being handled
        self._yield_to_frame = False  # the drainer stops after its event: a frame is waiting
        self._drainer_failure: BaseException | None = None
        task = asyncio.current_task()
        self._task = task
        with serving():
            # The drainer runs in the consumer's context, as Channels' handlers did, not in that
            # of the layer's reader, which calls _deliver.
            self._context = contextvars.copy_context()
            try:
                while True:
                    message = await receive()
                    self._handling = True
                    drainer = self._drainer
                    if drainer is not None:
                        self._yield_to_frame = True
                        await asyncio.wait((drainer,))
                    try:
                        await self.dispatch(message)
                        while self._events:  # those that came meanwhile
                            await self.dispatch(self._events.popleft())
                    except OSError:
                        # The client is gone (the ASGI server's send raises an OSError): the
                        # server has queued websocket.disconnect, which the next receive() returns.
                        if message["type"] == "websocket.disconnect":
                            raise
                        logger.debug("a send to a client that left", exc_info=True)
                    self._events = None  # an empty deque is 600 bytes an idle socket need not keep
                    self._handling = False
            except StopConsumer:
                pass
            except asyncio.CancelledError:
                failure = self._drainer_failure
                if failure is None or task.uncancel() > 0:
                    raise  # the server's own cancellation
                if not isinstance(failure, StopConsumer):
                    raise failure from None
            finally:
                # Nothing calls _deliver any more from the layer.
                self.channel_layer.close_inbox(self.channel_name)
                drainer = self._drainer
                if drainer is not None and drainer is not asyncio.current_task():
                    drainer.cancel()
                await self.ended()

    def _deliver(self, event: dict[str, Any]) -> None:
        """The layer's inbox callback, on the event loop: queue the event; start the drainer
        unless a frame's handler (which drains after itself) or the drainer is running."""
        if self._events is None:
            self._events = deque()
        self._events.append(event)
        if not self._handling and self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_task(self._drain(), context=self._context)

    async def _drain(self) -> None:
        try:
            while self._events and not self._yield_to_frame:
                await self.dispatch(self._events.popleft())
            if not self._events:
                self._events = None
        except OSError:
            # The client is gone; the server has queued websocket.disconnect for __call__,
            # whose disconnect() leaves the groups. What is still queued is for nobody.
            logger.debug("a send to a client that left", exc_info=True)
            self._events = None
        except Exception as failure:  # noqa: BLE001 - handed to __call__, which raises it
            # StopConsumer (a client too slow to read) or a bug: the consumer ends either way.
            self._drainer_failure = failure
            self._task.cancel()
        finally:
            self._drainer = None
            self._yield_to_frame = False

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its ``aclose_old_connections()``: that is a round trip to
        Channels' one sync thread before every frame and every group event, to close database
        connections this loop never opens. These consumers reach the database only through
        ``database_sync_to_async`` and ``frame_sync_to_async``, which close stale connections
        around each call on the thread that holds them; the hop would queue frames behind other
        sockets' database work on that thread."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def ended(self) -> None:
        """However the consumer ended: what it holds beyond the loop is given back here."""


class StockLoop(AsyncWebsocketConsumer):
    """Channels' own loop (``AsyncConsumer.__call__``: a channel of its own from the layer's
    public ``new_channel``, ``await_many_dispatch``, and Channels' ``dispatch``), for
    ``OMNICHANNEL_STOCK_REALTIME``. A consumer's own events go through the channel layer to its
    channel, with its ``send``."""

    async def __call__(self, scope, receive, send) -> None:
        self._sends: set[asyncio.Task] = set()
        with serving():
            self._context = contextvars.copy_context()
            try:
                await super().__call__(scope, receive, send)
            finally:
                for pending in self._sends:
                    pending.cancel()
                await self.ended()

    def _deliver(self, event: dict[str, Any]) -> None:
        """On the event loop: ``event`` to this consumer's channel (a round trip to Redis)."""
        task = asyncio.get_running_loop().create_task(self._send_own(event), context=self._context)
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send_own(self, event: dict[str, Any]) -> None:
        try:
            await self.channel_layer.send(self.channel_name, event)
        except Exception:
            logger.warning("could not send %s to the consumer's own channel", event.get("type"), exc_info=True)

    async def dispatch(self, message: dict[str, Any]) -> None:
        try:
            await super().dispatch(message)
        except OSError:
            # As in FastLoop: the client is gone, and websocket.disconnect is on its way.
            if message["type"] == "websocket.disconnect":
                raise
            logger.debug("a send to a client that left", exc_info=True)

    async def ended(self) -> None:
        """However the consumer ended: what it holds beyond the loop is given back here."""


# The loop the consumers are built on (docs/decisions.md, "The stock real-time stack").
ConsumerLoop: type[AsyncWebsocketConsumer] = StockLoop if settings.OMNICHANNEL_STOCK_REALTIME else FastLoop
