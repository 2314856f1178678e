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
