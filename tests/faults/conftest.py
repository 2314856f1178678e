"""A PostgreSQL cluster and a Redis server of the fault tests' own (made once per run and
migrated), and a fresh set of web and Celery processes per test."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.faults.stack import Postgres, Redis, Stack, postgres_bindir


def _why_not() -> str | None:
    if postgres_bindir() is None:
        return "needs the PostgreSQL server binaries (initdb, pg_ctl; FAULTS_PG_BINDIR) to run a cluster it may restart"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "runs its PostgreSQL cluster as user postgres when root, and there is no such user"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _why_not()
    if reason:
        for item in items:
            if "tests/faults/" in str(item.fspath).replace(os.sep, "/"):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def services(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    # The cluster's folder must be reachable by user postgres (pytest's are private to root).
    pg_root = Path(tempfile.mkdtemp(prefix="omnichannel-faults-pg-"))
    postgres, redis = Postgres(pg_root), Redis(root)
    postgres.init()
    redis.start()
    try:
        Stack(root, postgres, redis).manage("migrate", "--no-input", "-v0")
        yield postgres, redis
    finally:
        redis.stop()
        try:
            postgres.stop("immediate")
        except Exception:  # noqa: BLE001 - a test left it stopped
            pass
        shutil.rmtree(pg_root, ignore_errors=True)


@pytest.fixture
def stack(services, tmp_path):
    postgres, redis = services
    stack = Stack(tmp_path, postgres, redis)
    try:
        yield stack
    finally:
        stack.stop()
