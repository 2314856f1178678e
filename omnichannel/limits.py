"""WebSocket limits, and the uvicorn options that go with them: one source for the consumers
and for every command that starts the ASGI server (``omnichannel.devrun``, ``bench/run.py``,
README's production command). No Django import, so the process supervisors can read it before
Django is set up."""

from __future__ import annotations

from omnichannel.realtime import stock_requested

# The largest frame a consumer reads: UTF-8 bytes of one text frame. Larger: a ``bad_frame``.
MAX_FRAME = 32 * 1024
# uvicorn's ``--ws-max-size``: a little above MAX_FRAME, so the server refuses a larger frame
# (close 1009) from its length before buffering it whole, and every frame in between still
# reaches the consumer, which answers ``bad_frame`` and keeps the socket open.
WS_MAX_SIZE = MAX_FRAME + 4 * 1024


# uvicorn's sans-I/O WebSocket protocol keeping less per idle socket
# (omnichannel/realtime/wsprotocol.py), and uvicorn's own, which it subclasses, for
# OMNICHANNEL_STOCK_REALTIME.
WS_PROTOCOL = "omnichannel.realtime.wsprotocol:WebSocketProtocol"
STOCK_WS_PROTOCOL = "websockets-sansio"


def ws_protocol(stock: bool | None = None) -> str:
    """uvicorn's ``--ws``: ours, or uvicorn's own on the stock stack (``stock``; by default as
    the environment's OMNICHANNEL_STOCK_REALTIME says)."""
    if stock is None:
        stock = stock_requested()
    return STOCK_WS_PROTOCOL if stock else WS_PROTOCOL


# uvicorn leaves the client's address as the TCP peer's: it would otherwise replace it with
# X-Forwarded-For from the addresses of its own --forwarded-allow-ips (127.0.0.1 by default),
# a second list of trusted proxies beside TRUSTED_PROXIES. omnichannel.addresses decides.
PROXY_HEADERS = "--no-proxy-headers"


def uvicorn_args(stock: bool | None = None) -> list[str]:
    """The uvicorn options every real start of the server passes."""
    return ["--ws", ws_protocol(stock), "--ws-max-size", str(WS_MAX_SIZE), PROXY_HEADERS]
