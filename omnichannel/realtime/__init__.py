"""The real-time stack: what the ASGI server, the channel layer, the consumers' loop, Django's
ASGI handler and its cache do here in place of the libraries' own, each reaching into private
parts of uvicorn, channels-redis, Channels, asgiref or Django (docs/decisions.md).

- ``wsprotocol.py``: uvicorn's sans-I/O WebSocket protocol keeping less per idle socket;
- ``layers.py``: channels-redis' pub/sub layer with inboxes and a batch of frames in one call;
- ``consumer.py``: the consumers' loop (Channels' ``AsyncConsumer.__call__`` and ``dispatch``
  without a channel, a second task or a thread hop per frame);
- ``http.py``: Django's ASGI handler running the middleware in one hop to a reused thread;
- ``cache.py``: Django's Redis cache with one client per process.

``tests/realtime/test_private_symbols.py`` names every private symbol they use. This module
imports no Django: uvicorn and the process supervisors import the package before Django is set
up."""

from __future__ import annotations

import os

# The setting (omnichannel/settings.py) that runs the same application on the stock stack.
STOCK_SETTING = "OMNICHANNEL_STOCK_REALTIME"


def stock_requested(environ=os.environ) -> bool:
    """``OMNICHANNEL_STOCK_REALTIME`` for what runs before Django's settings exist: the commands
    that start uvicorn choose its WebSocket protocol with it (``omnichannel.limits``). Read as
    settings.py's ``env_bool`` reads it."""
    raw = environ.get(STOCK_SETTING, "").strip().lower()
    if raw in {"", "0", "false", "no", "off"}:
        return False
    if raw in {"1", "true", "yes", "on"}:
        return True
    raise ValueError(f"{STOCK_SETTING} must be a boolean (1/0, true/false, yes/no, on/off), not {raw!r}.")
