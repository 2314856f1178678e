"""A few PostgreSQL connections on the server's event loop, for the one statement of a message.

A message into an active conversation (``conversations.realtime.acustomer_message_send`` and
``aagent_message_send``) is one SQL statement. Run through Django it costs a hop to a database
thread and back, and six round trips (``BEGIN``, the row lock, the ``client_id`` lookup,
``INSERT``, ``UPDATE``, ``COMMIT``). Here it is one round trip on a psycopg ``AsyncConnection``
of the loop that received the frame, in autocommit: the statement is its own transaction.

Each event loop has its own connections (``FAST_PATH_CONNECTIONS``, 0 turns the path off), made
on first use from Django's own connection settings, and held while the loop lives. A connection
that failed, or was left in a transaction by a cancelled statement, is closed and not reused.
Only PostgreSQL: on SQLite (the embedded default) the services take their usual path.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from django.conf import settings
from django.db import connection
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus

logger = logging.getLogger(__name__)

APPLICATION_NAME = "omnichannel-message-statement"  # how these connections show in pg_stat_activity
ACQUIRE_TIMEOUT = 2.0  # seconds a statement may wait for one of its loop's connections


class Unavailable(Exception):
    """No connection of this loop within ACQUIRE_TIMEOUT, free or new (the caller takes the
    usual path)."""


def enabled() -> bool:
    return connection.vendor == "postgresql" and settings.FAST_PATH_CONNECTIONS > 0


class LoopConnections:
    """At most ``size`` connections of one event loop; the idle ones are reused, newest first."""

    def __init__(self, params: dict, size: int) -> None:
        self.params = params
        self.slots = asyncio.Semaphore(size)
        self.idle: list[AsyncConnection] = []
        self.open: set[AsyncConnection] = set()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with asyncio.timeout(ACQUIRE_TIMEOUT):
                await self.slots.acquire()
        except TimeoutError:
            raise Unavailable() from None
        conn = None
        try:
            conn = self.idle.pop() if self.idle else await self._connect()
            yield conn
        except BaseException:
            if conn is not None:
                await self._discard(conn)
                conn = None
            raise
        finally:
            if conn is not None:
                if conn.broken or conn.closed or conn.info.transaction_status != TransactionStatus.IDLE:
                    await self._discard(conn)
                else:
                    self.idle.append(conn)
            self.slots.release()

    async def _connect(self) -> AsyncConnection:
        try:
            async with asyncio.timeout(ACQUIRE_TIMEOUT):
                conn = await AsyncConnection.connect(**self.params, autocommit=True)
        except TimeoutError:
            raise Unavailable() from None
        self.open.add(conn)
        return conn

    async def _discard(self, conn: AsyncConnection) -> None:
        self.open.discard(conn)
        try:
            await conn.close()
        except Exception:  # already gone
            logger.debug("closing a fast-path connection failed", exc_info=True)

    async def aclose(self) -> None:
        for conn in list(self.open):
            await self._discard(conn)
        self.idle.clear()

    def close_now(self) -> None:
        """Close every connection without the loop (it is closed, or belongs to another
        thread): the sockets are shut at once; the server ends those sessions."""
        for conn in list(self.open):
            conn.pgconn.finish()
        self.open.clear()
        self.idle.clear()


_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopConnections] = weakref.WeakKeyDictionary()


def _params() -> dict:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)  # Django's sync cursor classes
    params.setdefault("application_name", APPLICATION_NAME)
    return params


@asynccontextmanager
async def connect() -> AsyncIterator[AsyncConnection]:
    """One of this loop's connections, for one statement."""
    loop = asyncio.get_running_loop()
    connections = _loops.get(loop)
    if connections is None:
        connections = _loops[loop] = LoopConnections(_params(), settings.FAST_PATH_CONNECTIONS)
    async with connections.connection() as conn:
        yield conn


def close_all() -> None:
    """Close every loop's connections (tests, between two tests: each runs its own loop)."""
    for connections in list(_loops.values()):
        connections.close_now()
    _loops.clear()
