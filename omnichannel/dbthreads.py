"""Where a WebSocket frame's database work runs.

Channels runs ``database_sync_to_async`` calls of a process one at a time, on a single
thread: under load every frame of every socket queues behind the round trips to PostgreSQL
of the frames before it, and the process spends its time waiting. Frames that only write a
message and its conversation row (``message.send``) need no thread affinity: each takes the
row lock it needs in its own transaction. They run on a small pool of threads instead, each
with its own connection from the pool, so a process keeps several round trips in flight.

One socket's frames still run one after the other (a consumer handles one frame at a time),
so a customer's messages keep their order. On SQLite (the embedded default), where writers
queue on one file lock anyway, everything stays on Channels' single thread.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from channels.db import DatabaseSyncToAsync, database_sync_to_async
from django.conf import settings
from django.db import connection

_executor: tuple[int, ThreadPoolExecutor] | None = None
_lock = threading.Lock()


def threads() -> int:
    """How many frame threads a process has (``FRAME_DB_THREADS``; 0 on SQLite)."""
    if connection.vendor == "sqlite":
        return 0
    return settings.FRAME_DB_THREADS


def _pool(size: int) -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None or _executor[0] != os.getpid():
            _executor = (os.getpid(), ThreadPoolExecutor(max_workers=size, thread_name_prefix="frame-db"))
        return _executor[1]


def frame_sync_to_async(func):
    """``database_sync_to_async`` for a frame's write: on the frame threads when there are any."""
    size = threads()
    if size <= 0:
        return database_sync_to_async(func)
    return DatabaseSyncToAsync(func, thread_sensitive=False, executor=_pool(size))
