"""The customer's WebSocket, ``/ws/widget/<widget_key>/`` (docs/protocol.md), and the transport
base it shares with the agent's socket. Consumers are transport: authenticate, join groups,
validate frames, call one service, forward group events. The database and ``seq`` are the
truth; the channel layer only speeds things up."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import DatabaseError
from redis.exceptions import RedisError

from conversations import events, realtime, services
from conversations.customer_tokens import authenticate_customer_until, get_widget
from conversations.errors import (
    BadFrame,
    DomainError,
    NotFound,
    OriginNotAllowed,
    RateLimited,
    Unavailable,
)
from conversations.models import Customer
from conversations.selectors import MAX_PAGE, current_conversation, message_page
from omnichannel import ratelimit, socketcap
from omnichannel.addresses import client_address
from omnichannel.limits import MAX_FRAME
from omnichannel.origins import origin_allowed, origin_header
from omnichannel.ratelimit import TokenBucket
from omnichannel.realtime.consumer import ConsumerLoop
from omnichannel.text import is_unicode
from workstreams.models import ChatWidget

logger = logging.getLogger(__name__)

AUTH_TIMEOUT = 10.0  # seconds an unauthenticated socket may stay open (read when it connects)
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 4408
SEND_TIMEOUT = settings.WS_SEND_TIMEOUT
# docs/protocol.md, close codes: frames kept coming far beyond the rate limit, or one more socket
# than MAX_SOCKETS_PER_ADDRESS from one address
CLOSE_FLOODING = 4429
MESSAGE_RATE = (20, 10)  # per customer: 20 messages per 10 seconds
TYPING_INTERVAL = 2.0
# The consumers' clock for the per-socket frame budget (tests replace it, so nothing waits).
monotonic = time.monotonic
# An escaped UTF-16 surrogate in the raw text: the only way JSON can smuggle a lone one in.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")


def _frame_too_big(text: str) -> bool:
    """More than MAX_FRAME bytes of UTF-8 (uvicorn's --ws-max-size counts bytes too)."""
    if len(text) > MAX_FRAME:
        return True
    if len(text) * 4 <= MAX_FRAME:  # no character takes more than 4 bytes
        return False
    return len(text.encode("utf-8", "surrogatepass")) > MAX_FRAME


class SeqTracker:
    """Which message seqs this socket has been sent, per conversation: a watermark plus the
    few above it, so a frame is never sent twice on one socket."""

    def __init__(self) -> None:
        self._low: dict[int, int] = {}
        self._above: dict[int, set[int]] = {}

    def seen(self, conversation_id: int, seq: int) -> bool:
        low = self._low.get(conversation_id, 0)
        return seq <= low or seq in self._above.get(conversation_id, ())

    def add(self, conversation_id: int, seq: int) -> None:
        low = self._low.get(conversation_id, 0)
        above = self._above.setdefault(conversation_id, set())
        above.add(seq)
        while low + 1 in above:
            low += 1
            above.discard(low)
        self._low[conversation_id] = low

    def start_at(self, conversation_id: int, seq: int) -> None:
        """Everything up to ``seq`` is known to the client (its after_seq)."""
        if seq > self._low.get(conversation_id, 0):
            self._low[conversation_id] = seq
            self._above[conversation_id] = {s for s in self._above.get(conversation_id, ()) if s > seq}


class ProtocolConsumer(ConsumerLoop):
    """JSON frames, error frames that keep the socket open, the auth deadline, group
    membership, and message frames deduplicated by seq."""

    authenticated = False
    # Whether an authenticated socket may send another auth frame (a fresh token before the
    # one it authenticated with expires).
    renewable = False
    # Every frame a socket sends (auth, typing, garbage, too big: all of them) spends a token of
    # its own bucket, refilled at ``frame_rate`` a second up to ``frame_burst``; without one the
    # frame is answered ``rate_limited`` unread. Refusals spend a second bucket of the same size
    # and rate: a socket that keeps sending at more than twice the rate is closed (4429).
    frame_rate = 10.0
    frame_burst = 40
    # The client address this socket is counted under (omnichannel.socketcap), once counted.
    counted_address: str | None = None
    # A socket's one timer after authentication (``set_timer``), and the event it queues when it
    # fires, handled like a group event: a customer's token runs out, an agent's access is checked.
    timer: asyncio.TimerHandle | None = None
    timer_event: str = ""

    async def ended(self) -> None:
        """However the consumer ended (the loop, ``omnichannel.realtime.consumer``, awaits it):
        nothing more is delivered, the groups are left and the socket is no longer counted."""
        if getattr(self, "auth_deadline", None) is not None:
            self.auth_deadline.cancel()
        if self.timer is not None:
            self.timer.cancel()
        for group in list(getattr(self, "groups_joined", ())):  # however it ended
            await self.leave(group)
        if self.counted_address is not None:
            address, self.counted_address = self.counted_address, None
            await socketcap.counts().give_back(address)

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        """One more socket from an address that holds ``MAX_SOCKETS_PER_ADDRESS`` already (in
        all server processes together) is closed with 4429 before anything else is done for it."""
        limit = settings.MAX_SOCKETS_PER_ADDRESS
        if limit:
            address = socketcap.address_key(client_address(self.scope))
            if not await socketcap.counts().take(address, limit):
                logger.info("%s holds %s sockets already: the next one is closed (4429)", address, limit)
                await self.accept()  # a close before it would be an HTTP 403 without the code
                # The close ends the consumer (``close``): nothing more is read from this socket.
                await self.send_error("rate_limited", "Too many open sockets from this address.", close=CLOSE_FLOODING)
            self.counted_address = address
        await super().websocket_connect(message)

    async def connect(self) -> None:
        self.groups_joined: set[str] = set()
        self.sent = SeqTracker()
        self.auth_deadline: asyncio.TimerHandle | None = None
        now = monotonic()
        self.frame_budget = TokenBucket(self.frame_rate, self.frame_burst, now)
        self.refusal_budget = TokenBucket(self.frame_rate, self.frame_burst, now)
        await self.accept()
        # A timer, not a task: an authenticated socket keeps nothing of it. When it fires it
        # queues an event like a group event, so it waits for an auth frame being handled.
        self.auth_deadline = asyncio.get_running_loop().call_later(
            AUTH_TIMEOUT, self._auth_deadline_passed, AUTH_TIMEOUT
        )

    def set_timer(self, delay: float) -> None:
        """Queue ``timer_event`` in ``delay`` seconds, replacing the timer set before. A handle
        and a bound method per socket (no task, no event kept until it fires), run in the
        consumer's own context; it ends with the consumer."""
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(delay, self._timer_fired, context=self._context)

    def _timer_fired(self) -> None:
        self.timer = None
        self._deliver({"type": self.timer_event})

    def _auth_deadline_passed(self, timeout: float) -> None:
        self.auth_deadline = None
        if not self.authenticated:
            self._deliver({"type": "auth.expired", "timeout": timeout})

    async def auth_expired(self, event: dict[str, Any]) -> None:
        if not self.authenticated:
            await self.send_error(
                "authentication_required",
                f"No auth frame within {event['timeout']:g} seconds.",
                close=CLOSE_UNAUTHENTICATED,
            )

    def mark_authenticated(self) -> None:
        self.authenticated = True
        if self.auth_deadline is not None:
            self.auth_deadline.cancel()
            self.auth_deadline = None

    async def join(self, group: str) -> None:
        if group not in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.add(group)

    async def leave(self, group: str) -> None:
        if group in self.groups_joined:
            self.groups_joined.discard(group)
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:  # Redis gone: the membership expires on its own
                logger.debug("group_discard %s failed", group, exc_info=True)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        """A client that stops reading (its TCP window full) blocks this send. Past
        ``WS_SEND_TIMEOUT`` seconds it is let go: the consumer leaves its groups and stops, so
        its frames no longer pile up in this process and nobody waits for it; the client
        catches up from ``after_seq`` when it reconnects."""
        text = json.dumps(frame, separators=(",", ":"))
        try:
            # asyncio.timeout, not wait_for: no task of its own for every frame sent (Python 3.11).
            async with asyncio.timeout(SEND_TIMEOUT):
                await self.send(text_data=text)
        except TimeoutError:
            logger.info("a client stopped reading for %s s: letting it go", SEND_TIMEOUT)
            await self.websocket_disconnect({"code": CLOSE_TOO_SLOW})  # raises StopConsumer

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        """Closes the socket and ends the consumer at once: ``disconnect()`` runs as when the
        client leaves (a customer's connection is no longer counted; a live chat can be
        auto-closed), the groups are left, and nothing is sent after the close. The ASGI server
        refuses a send after a close with a RuntimeError: a flood's next frames, or a group
        event, answered after a 4429 or a 4401 raised it, and ``disconnect()`` never ran."""
        try:
            await super().close(code=code, reason=reason)
        except OSError:  # the client left first; the close is moot
            logger.debug("closing a socket whose client left", exc_info=True)
        await self.websocket_disconnect({"code": code if isinstance(code, int) else 1000})  # raises StopConsumer

    async def send_error(
        self, code: str, detail: str, *, client_id: Any = None, close: int | None = None, **extra: Any
    ) -> None:
        frame: dict[str, Any] = {"type": "error", "code": code, "detail": detail, **extra}
        if client_id is not None:
            frame["client_id"] = client_id
        await self.send_frame(frame)
        if close is not None:
            await self.close(code=close)

    async def send_message(self, message: dict[str, Any], *, force: bool = False) -> None:
        conversation_id, seq = message["conversation_id"], message["seq"]
        if self.sent.seen(conversation_id, seq) and not force:
            return
        self.sent.add(conversation_id, seq)
        await self.send_frame({"type": "message", "message": message})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not await self._within_frame_budget():
            return
        client_id = None
        try:
            if text_data is None or _frame_too_big(text_data):
                raise BadFrame("Frames are JSON text of at most 32 KiB.")
            try:
                frame = json.loads(text_data)
            except (ValueError, RecursionError):  # RecursionError: arrays or objects nested too deep
                raise BadFrame("The frame is not JSON.") from None
            if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
                raise BadFrame('A frame is a JSON object with a "type".')
            if _SURROGATE_ESCAPE.search(text_data) and not is_unicode(frame):
                raise BadFrame("The frame holds a lone UTF-16 surrogate: it is not Unicode text.")
            client_id = frame.get("client_id") if isinstance(frame.get("client_id"), str) else None
            if frame["type"] == "auth":
                if self.authenticated and not self.renewable:
                    raise BadFrame("Already authenticated.")
                await self.authenticate(frame)
                return
            if not self.authenticated:
                await self.send_error(
                    "authentication_required", "The first frame must be an auth frame.", close=CLOSE_UNAUTHENTICATED
                )
                return
            handler = self.frame_handlers().get(frame["type"])
            if handler is None:
                raise BadFrame(f"Unknown frame type {frame['type']!r}.")
            await handler(frame)
        except DomainError as error:
            await self.send_error(error.code, error.detail, client_id=client_id, **error.extra)
        except DatabaseError:
            logger.warning("database unavailable while handling a frame", exc_info=True)
            error = Unavailable()
            await self.send_error(error.code, error.detail, client_id=client_id)
        except RedisError:
            # The rate limit or the channel layer could not be reached: the frame was not handled,
            # the client may retry; the socket stays open.
            logger.warning("Redis unavailable while handling a frame", exc_info=True)
            error = Unavailable()
            await self.send_error(error.code, error.detail, client_id=client_id)

    async def _within_frame_budget(self) -> bool:
        """Spends a token of this socket's frame budget; False (after answering) when there was
        none. No I/O: the per-socket limit costs nothing on the hot path."""
        now = monotonic()
        wait = self.frame_budget.take(now)
        if not wait:
            return True
        if self.refusal_budget.take(now):
            await self.send_error("rate_limited", "Too many frames for too long; closing.", close=CLOSE_FLOODING)
        else:
            error = RateLimited("Too many frames on this socket; slow down.")
            await self.send_error(error.code, error.detail, retry_after=_seconds(wait))
        return False

    def frame_handlers(self) -> dict[str, Any]:
        return {}

    async def authenticate(self, frame: dict[str, Any]) -> None:
        raise NotImplementedError

    async def broadcast(self, event: dict[str, Any]) -> None:
        """A group event from the engine (conversations.events)."""
        frame = event["frame"]
        if frame.get("type") == "message":
            await self.send_message(frame["message"])
        else:
            await self.on_frame(frame)

    async def on_frame(self, frame: dict[str, Any]) -> None:
        await self.send_frame(frame)


def _seconds(wait: float) -> float:
    """A retry hint: seconds, rounded up to the millisecond."""
    return -(-round(wait * 1_000_000) // 1000) / 1000


def required(frame: dict[str, Any], name: str, kind: type = str) -> Any:
    value = frame.get(name)
    if value is None:
        raise BadFrame(f'The frame needs "{name}".')
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadFrame(f'"{name}" has the wrong type.')
    return value


def message_body(frame: dict[str, Any]) -> str:
    """A ``message.send``'s body: required, unless the message carries attachments (it may then
    be empty or absent; the engine checks both)."""
    if frame.get("body") is None and frame.get("attachments"):
        return ""
    return required(frame, "body")


def optional_seq(frame: dict[str, Any], name: str) -> int:
    value = frame.get(name, 0)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadFrame(f'"{name}" must be a non-negative integer.')
    return value


# --- The customer's socket -------------------------------------------------------------------------


class WidgetConsumer(ProtocolConsumer):
    """``/ws/widget/<widget_key>/``: one customer of one widget."""

    renewable = True  # a fresh token before the last one expires keeps the socket
    timer_event = "credentials.expired"  # the token this socket authenticated with ran out

    async def connect(self) -> None:
        await super().connect()
        try:
            self.widget = await database_sync_to_async(get_widget)(self.scope["url_route"]["kwargs"]["widget_key"])
        except NotFound:
            await self.send_error("not_found", "No such widget.", close=CLOSE_FORBIDDEN)
            return
        origin = origin_header(self.scope)  # none: a client that is no browser
        if origin is not None and not origin_allowed(origin, self.scope, also=self.widget.origins):
            error = OriginNotAllowed()
            await self.send_error(error.code, error.detail, close=CLOSE_FORBIDDEN)
            return
        self.customer: Customer | realtime.CustomerRef | None = None
        self.conversation_id: int | None = None
        self.agent_id: int | None = None
        self.last_typing = 0.0

    async def disconnect(self, code) -> None:
        await super().disconnect(code)
        if getattr(self, "customer", None) is not None and self.authenticated:
            try:
                await database_sync_to_async(services.customer_disconnect)(customer=self.customer)
            except DatabaseError:
                logger.warning("could not record a customer disconnect", exc_info=True)

    def frame_handlers(self):
        return {
            "message.send": self.on_message_send,
            "typing": self.on_typing,
            "conversation.end": self.on_conversation_end,
        }

    async def authenticate(self, frame: dict[str, Any]) -> None:
        """The first auth frame, or a fresh token on an authenticated socket (a renewal: the
        same customer, ``ready`` again, the socket kept). A token that is refused, or names
        another customer, closes the socket (4401)."""
        token = frame.get("token")
        after_seq = optional_seq(frame, "after_seq")
        renewal = self.authenticated
        try:
            customer, valid_until = await database_sync_to_async(self._authenticate)(token)
        except DomainError as error:
            await self.send_error(error.code, error.detail, close=CLOSE_UNAUTHENTICATED)
            return
        if renewal and customer.pk != self.customer.pk:
            await self.send_error(
                "invalid_token", "The token names another customer; reconnect.", close=CLOSE_UNAUTHENTICATED
            )
            return
        # Closed (4401) when the token runs out, unless a fresh one came first.
        self.set_timer(max(0.0, valid_until - time.time()))
        self.customer = customer
        if not renewal:
            self.mark_authenticated()
            # Join before reading, so nothing committed after the read is missed.
            await self.join(events.customer_group(customer.pk, self.widget.workstream_id))
            await database_sync_to_async(services.customer_connect)(customer=customer)
        conversation, messages, has_more = await database_sync_to_async(self._ready_state)(after_seq)
        if conversation is not None:
            self.sent.start_at(conversation["id"], after_seq)
            for message in messages:
                self.sent.add(message["conversation_id"], message["seq"])
        await self.send_frame(
            {"type": "ready", "conversation": conversation, "messages": messages, "has_more": has_more}
        )
        # From here on the socket keeps ids, not model instances (realtime.WidgetRef).
        self.widget = realtime.WidgetRef.of(self.widget)
        self.customer = realtime.CustomerRef.of(customer)

    def _authenticate(self, token: object):
        # A renewal reads the widget again: the socket keeps only its ids (realtime.WidgetRef).
        widget = self.widget if isinstance(self.widget, ChatWidget) else get_widget(pk=self.widget.pk)
        return authenticate_customer_until(widget, token)

    async def credentials_expired(self, event: dict[str, Any]) -> None:
        if self.timer is None:  # else a fresh token came after the timer fired
            await self.send_error(
                "invalid_token",
                "The token expired; send a fresh auth frame before it does, or reconnect.",
                close=CLOSE_UNAUTHENTICATED,
            )

    def _ready_state(self, after_seq: int):
        conversation = current_conversation(self.customer, self.widget.workstream_id)
        if conversation is None:
            return None, [], False
        self._track(conversation.pk, conversation.agent_id)
        messages, has_more = message_page(conversation.pk, after_seq=after_seq, limit=MAX_PAGE, for_customer=True)
        return (
            events.conversation_object(conversation),
            [events.message_object(m) for m in messages],
            has_more,
        )

    def _track(self, conversation_id: int, agent_id: int | None) -> None:
        self.conversation_id = conversation_id
        self.agent_id = agent_id

    async def on_frame(self, frame: dict[str, Any]) -> None:
        if frame.get("type") == "conversation":
            conversation = frame["conversation"]
            agent = conversation.get("agent")
            if conversation["status"] != "closed" or conversation["id"] == self.conversation_id:
                self._track(conversation["id"], agent["id"] if agent else None)
        await self.send_frame(frame)

    async def on_message_send(self, frame: dict[str, Any]) -> None:
        client_id = required(frame, "client_id")
        body = message_body(frame)
        key = f"customer:{self.customer.pk}"
        if not await ratelimit.aallow(key, *MESSAGE_RATE):
            raise RateLimited(retry_after=_seconds(await ratelimit.aretry_after(key, MESSAGE_RATE[1])))
        result = await realtime.acustomer_message_send(
            widget=self.widget,
            customer=self.customer,
            body=body,
            client_id=client_id,
            internal=frame.get("internal"),
            prechat=frame.get("prechat"),
            attachments=frame.get("attachments"),
        )
        if result.conversation.pk != self.conversation_id and result.created:
            self._track(result.conversation.pk, result.conversation.agent_id)
        # The echo is the acknowledgement: sent now, whatever the channel layer does.
        await self.send_message(events.message_object(result.message), force=not result.created)

    async def on_typing(self, frame: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - self.last_typing < TYPING_INTERVAL or self.conversation_id is None or self.agent_id is None:
            return
        self.last_typing = now
        await self.channel_layer.group_send(
            events.agent_group(self.agent_id),
            {"type": "broadcast", "frame": events.typing_frame(self.conversation_id, "customer")},
        )

    async def on_conversation_end(self, frame: dict[str, Any]) -> None:
        await database_sync_to_async(realtime.resolved_customer_conversation_end)(
            widget=self.widget, customer=self.customer
        )
