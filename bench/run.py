# ruff: noqa: S603, S310 - runs this project's own tools and loopback URLs only
"""Run the benchmark of issue 6 and print the table (docs/benchmark.md).

    python -m bench.run            # the whole set, 3 runs (make bench)
    python -m bench.run --smoke    # a few seconds, small load, lost/duplicated check (make bench-smoke)

It sets up its own database (``BENCH_DATABASE_URL``, default
``postgres://postgres@127.0.0.1:5432/omnichannel_bench``, dropped and created again; its name
must contain "bench") and empties its own Redis database (``BENCH_REDIS_URL``, default
``redis://127.0.0.1:6379/2``). Then it starts the production setup of the README (two uvicorn
processes, one per core, on distinct ports; a Celery worker with two processes; Celery beat)
and the floor (two bench/floor/server.py processes), and runs each figure against both, one
after the other, in each run. Every load comes from bench/load.py in its own process.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg
import redis
from psycopg import sql

from omnichannel.limits import uvicorn_args

BASE_DIR = Path(__file__).resolve().parent.parent
PY = sys.executable
WORK = BASE_DIR / "var" / "bench"

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/omnichannel_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/2"

FIGURES = ("latency", "throughput", "connections", "history", "assignment", "uploads")


def log(*parts) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


# --- processes ------------------------------------------------------------------------------------


def omni_server_command(port: int) -> list[str]:
    """One Omnichannel server process: README's production command (one worker per process)."""
    return [
        PY,
        "-m",
        "uvicorn",
        "omnichannel.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ws-ping-interval",
        "20",
        *uvicorn_args(),
        "--no-access-log",
        "--log-level",
        "warning",
        "--backlog",
        "4096",
    ]


_children: list[subprocess.Popen] = []


def spawn(args: list[str], env: dict, name: str, **kwargs) -> subprocess.Popen:
    WORK.mkdir(parents=True, exist_ok=True)
    logfile = open(WORK / f"{name}.log", "ab")  # kept open for the child
    process = subprocess.Popen(
        args,
        env=env,
        cwd=BASE_DIR,
        stdout=kwargs.pop("stdout", logfile),
        stderr=logfile,
        start_new_session=True,
        **kwargs,
    )
    process.bench_name = name  # type: ignore[attr-defined]
    _children.append(process)
    return process


def stop(process: subprocess.Popen, timeout: float = 15) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
    if process in _children:
        _children.remove(process)


@atexit.register
def _stop_all() -> None:
    for process in list(_children):
        stop(process, timeout=5)


def wait_until(check, what: str, timeout: float = 60, interval: float = 0.2) -> None:
    """Until ``check()`` is true (an OSError counts as not yet); AssertionError after ``timeout``
    seconds. The bench's and the fault tests' processes are awaited with it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not come up within {timeout:g} s")
        time.sleep(interval)


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200


def wait_http(url: str, timeout: float = 60) -> None:
    try:
        wait_until(lambda: http_ok(url), url, timeout)
    except AssertionError:
        raise SystemExit(f"{url} did not answer within {timeout} s (see {WORK}/*.log)") from None


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"port {port} did not open within {timeout} s") from None
            time.sleep(0.1)


def run_json(args: list[str], env: dict, *, stdin=None) -> list[dict]:
    """Run a bench tool to completion; its stdout lines are JSON objects."""
    out = subprocess.run(args, env=env, cwd=BASE_DIR, capture_output=True, text=True, input=stdin)
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"{' '.join(args[:4])} failed ({out.returncode})")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


# --- the set-up -----------------------------------------------------------------------------------


class Bench:
    def __init__(self, opts) -> None:
        self.opts = opts
        self.db_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
        self.redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
        base = int(os.environ.get("BENCH_PORT_BASE", "8600"))
        self.omni_ports = [base + 1, base + 2]
        self.floor_ports = [base + 11, base + 12]
        self.floor_http = [base + 21, base + 22]
        self.dsn = self._dsn(self.db_url)
        self.env = {
            **os.environ,
            "DATABASE_URL": self.db_url,
            "REDIS_URL": self.redis_url,
            "DEBUG": "0",
            "SECRET_KEY": "bench-secret-key-not-for-production-0123456789abcdefghijklmnop",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "0",  # plain HTTP on loopback; production terminates TLS in front
            "OMNICHANNEL_VAR_DIR": str(WORK / "var"),
            "LOG_LEVEL": "WARNING",
            # The figures measure the server, not the REST throttles (whose cost stays in).
            "THROTTLE_AGENT": "10000000/min",
            "THROTTLE_WIDGET": "10000000/min",
            # The load generator's 10,000 idle sockets all come from 127.0.0.1; the cap's cost (one
            # Redis call per new socket, a heartbeat per process) stays in.
            "MAX_SOCKETS_PER_ADDRESS": "1000000",
            "PYTHONUNBUFFERED": "1",
        }
        self.omni: list[subprocess.Popen] = []
        self.celery: list[subprocess.Popen] = []
        self.floor: list[subprocess.Popen] = []

    @staticmethod
    def _dsn(url: str) -> str:
        parts = urlsplit(url)
        scheme = "postgresql" if parts.scheme in ("postgres", "postgresql", "pgsql") else parts.scheme
        return urlunsplit((scheme, *parts[1:]))

    def manage(self, *args: str) -> None:
        subprocess.run([PY, "manage.py", *args], env=self.env, cwd=BASE_DIR, check=True, stdout=subprocess.DEVNULL)

    def prepare(self) -> None:
        parts = urlsplit(self.dsn)
        name = parts.path.lstrip("/")
        if "bench" not in name:
            raise SystemExit(f"refusing to drop database {name!r}: the bench database's name must contain 'bench'")
        admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
        log(f"database {name}: drop, create, migrate, seed")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        redis.Redis.from_url(self.redis_url).flushdb()
        (WORK / "var").mkdir(parents=True, exist_ok=True)
        for stale in WORK.glob("*.log"):
            stale.unlink()
        self.manage("migrate", "--no-input", "-v0")
        self.manage("seed_demo")
        subprocess.run(
            [
                PY,
                "-m",
                "bench.floor.server",
                "--init-schema",
                "--port",
                "0",
                "--http-port",
                "0",
                "--dsn",
                self.dsn,
                "--redis",
                self.redis_url,
            ],
            env=self.env,
            cwd=BASE_DIR,
            check=True,
        )

    # -- servers --

    def check_ports(self, ports: list[int]) -> None:
        busy = [port for port in ports if port_in_use(port)]
        if busy:
            raise SystemExit(f"ports {busy} are in use (set BENCH_PORT_BASE to move the bench's ports)")

    def check_alive(self, processes: list[subprocess.Popen]) -> None:
        for process in processes:
            if process.poll() is not None:
                raise SystemExit(
                    f"{process.bench_name} exited ({process.returncode}); see {WORK}/{process.bench_name}.log"
                )

    def start_omni(self, celery: bool = True) -> None:
        self.check_ports(self.omni_ports)
        for n, port in enumerate(self.omni_ports):
            self.omni.append(spawn(omni_server_command(port), self.env, f"uvicorn-{n}"))
        if celery and not self.celery:
            self.celery.append(
                spawn(
                    [
                        PY,
                        "-m",
                        "celery",
                        "-A",
                        "omnichannel",
                        "worker",
                        "--concurrency",
                        "2",
                        "--loglevel",
                        "WARNING",
                        "-n",
                        "bench@%h",
                    ],
                    self.env,
                    "celery-worker",
                )
            )
            self.celery.append(
                spawn(
                    [PY, "-m", "celery", "-A", "omnichannel", "beat", "--loglevel", "WARNING"], self.env, "celery-beat"
                )
            )
        for port in self.omni_ports:
            wait_http(f"http://127.0.0.1:{port}/healthz")
        self.check_alive(self.omni + self.celery)

    def start_floor(self) -> None:
        self.check_ports(self.floor_ports + self.floor_http)
        for n, (port, http_port) in enumerate(zip(self.floor_ports, self.floor_http, strict=True)):
            self.floor.append(
                spawn(
                    [
                        PY,
                        "-m",
                        "bench.floor.server",
                        "--port",
                        str(port),
                        "--http-port",
                        str(http_port),
                        "--dsn",
                        self.dsn,
                        "--redis",
                        self.redis_url,
                    ],
                    self.env,
                    f"floor-{n}",
                )
            )
        for port in self.floor_ports + self.floor_http:
            wait_port(port)
        self.check_alive(self.floor)

    def restart_web(self) -> None:
        """Fresh web processes (the connections figure measures memory from a clean start)."""
        for process in self.omni + self.floor:
            stop(process)
        self.omni, self.floor = [], []
        self.start_omni(celery=False)
        self.start_floor()

    def stop_all(self) -> None:
        for process in self.omni + self.floor + self.celery:
            stop(process)
        self.omni, self.floor, self.celery = [], [], []

    # -- fixtures --

    def omni_fixture(self, what: str, *args: str) -> dict:
        path = WORK / f"omni-{what}.json"
        subprocess.run(
            [PY, "-m", "bench.omni_setup", what, "--out", str(path), *args], env=self.env, cwd=BASE_DIR, check=True
        )
        return json.loads(path.read_text())

    def floor_fixture(self, customers: int, agents: int) -> Path:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                """INSERT INTO floor_conversation (id, agent_id, status, last_seq)
                SELECT n, (n - 1) %% %s + 1, 'active', 0 FROM generate_series(1, %s) n
                ON CONFLICT (id) DO UPDATE SET agent_id = EXCLUDED.agent_id, status = 'active'""",
                [agents, customers],
            )
        data = {
            "agents": [{"id": n} for n in range(1, agents + 1)],
            "conversations": [{"id": n, "agent_id": (n - 1) % agents + 1} for n in range(1, customers + 1)],
        }
        path = WORK / "floor-messages.json"
        path.write_text(json.dumps(data))
        return path

    def floor_history(self, messages: int) -> Path:
        cid = 9_000_000
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM floor_message WHERE conversation_id = %s", [cid])
            conn.execute(
                "INSERT INTO floor_conversation (id, agent_id, status, last_seq) VALUES (%s, 1, 'active', %s) "
                "ON CONFLICT (id) DO UPDATE SET last_seq = EXCLUDED.last_seq",
                [cid, messages],
            )
            conn.execute(
                """INSERT INTO floor_message (conversation_id, seq, sender, client_id, body, created_at)
                SELECT %s, n, CASE WHEN n %% 2 = 0 THEN 'agent' ELSE 'customer' END, md5(n::text),
                       'History message number ' || n, now() - (%s - n) * interval '1 second'
                FROM generate_series(1, %s) n""",
                [cid, messages, messages],
            )
            conn.execute("VACUUM ANALYZE floor_message")  # settled, as omni_setup leaves its history
            plan = "\n".join(
                r[0]
                for r in conn.execute(
                    "EXPLAIN SELECT seq FROM floor_message WHERE conversation_id = %s ORDER BY seq DESC LIMIT 51", [cid]
                )
            )
        path = WORK / "floor-history.json"
        path.write_text(json.dumps({"conversation_id": cid, "messages": messages, "explain": {"latest": plan}}))
        return path

    # -- figures --

    def messages(self, target: str, fixture: Path, rates: str, step: float, *, stop_on_fail: bool) -> list[dict]:
        ports = self.omni_ports if target == "omni" else self.floor_ports
        args = [
            PY,
            "-m",
            "bench.load",
            "messages",
            "--target",
            target,
            "--ports",
            ",".join(map(str, ports)),
            "--fixture",
            str(fixture),
            "--dsn",
            self.dsn,
            "--rates",
            rates,
            "--step",
            str(step),
            "--warmup",
            str(self.opts.warmup),
            "--grace",
            str(self.opts.grace),
        ]
        if stop_on_fail:
            args.append("--stop-on-fail")
        lines = run_json(args, self.env)
        return [line for line in lines if line.get("event") == "step"]

    def uploads(self, fixture: Path, mbps: float) -> dict:
        """The latency figure (Omnichannel only) while ``--upload-clients`` customers upload
        10 MB attachments to the same server processes without pause, each over an uplink of
        ``mbps`` megabits per second (0: as fast as loopback goes), with the processes' peak
        resident memory meanwhile (sampled every 100 ms) beside their memory before."""
        servers = [psutil.Process(p.pid) for p in self.omni]
        before = sum(proc.memory_info().rss for proc in servers)
        peak = [before]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.1):
                peak[0] = max(peak[0], sum(proc.memory_info().rss for proc in servers))

        load = subprocess.Popen(
            [
                PY,
                "-m",
                "bench.load",
                "uploads",
                "--ports",
                ",".join(map(str, self.omni_ports)),
                "--fixture",
                str(fixture),
                "--clients",
                str(self.opts.upload_clients),
                "--mbps",
                str(mbps),
            ],
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        sampler = threading.Thread(target=sample, daemon=True)
        try:
            assert json.loads(load.stdout.readline())["event"] == "uploading"
            sampler.start()
            time.sleep(2)  # the uploads under way
            (step,) = self.messages("omni", fixture, str(self.opts.rate), self.opts.duration, stop_on_fail=False)
        finally:
            load.stdin.close()
            summary = json.loads(load.stdout.read().strip().splitlines()[-1])
            load.wait(timeout=180)
            sampling.set()
            shutil.rmtree(WORK / "var" / "media", ignore_errors=True)
        mib = 1024 * 1024
        return {
            "latency": step,
            "uploads": summary,
            "rss_before_mib": round(before / mib, 1),
            "rss_peak_mib": round(peak[0] / mib, 1),
            "rss_growth_mib": round((peak[0] - before) / mib, 1),
        }

    def idle(self, target: str, fixture: Path, levels: list[int]) -> dict:
        port = self.omni_ports[0] if target == "omni" else self.floor_ports[0]
        server = (self.omni if target == "omni" else self.floor)[0]
        proc = psutil.Process(server.pid)
        time.sleep(1)
        baseline = proc.memory_info().rss
        load = subprocess.Popen(
            [
                PY,
                "-m",
                "bench.load",
                "idle",
                "--target",
                target,
                "--port",
                str(port),
                "--fixture",
                str(fixture),
                "--levels",
                ",".join(map(str, levels)),
            ],
            env=self.env,
            cwd=BASE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        results = {}
        try:
            for level in levels:
                line = json.loads(load.stdout.readline())
                assert line["event"] == "level" and line["level"] == level, line
                time.sleep(self.opts.settle)
                rss = proc.memory_info().rss
                cpu0, t0 = proc.cpu_times(), time.monotonic()
                time.sleep(self.opts.idle_window)
                cpu1, t1 = proc.cpu_times(), time.monotonic()
                busy = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
                load.stdin.write("next\n")
                load.stdin.flush()
                held = json.loads(load.stdout.readline())
                results[level] = {
                    "held": held["held"],
                    "failures": line["failures"],
                    "open_seconds": line["open_seconds"],
                    "kib_per_socket": round((rss - baseline) / 1024 / level, 1),
                    "rss_mib": round(rss / 2**20, 1),
                    "cpu_pct": round(100 * busy / (t1 - t0), 2),
                }
                log(f"  {target} idle {level}: {results[level]}")
        finally:
            try:
                load.stdin.write("\n")
                load.stdin.flush()
            except BrokenPipeError:
                pass
            load.wait(120)
        return results

    def history(self, target: str, fixture: Path) -> dict:
        port = self.omni_ports[0] if target == "omni" else self.floor_http[0]
        (line,) = run_json(
            [
                PY,
                "-m",
                "bench.load",
                "history",
                "--target",
                target,
                "--port",
                str(port),
                "--fixture",
                str(fixture),
                "--requests",
                str(self.opts.history_requests),
            ],
            self.env,
        )
        return line

    def assign_omni(self) -> dict:
        fixture = self.omni_fixture(
            "assignment",
            "--conversations",
            str(self.opts.assign_conversations),
            "--agents",
            str(self.opts.assign_agents),
        )
        ids = fixture["conversation_ids"]
        barrier = threading.Barrier(len(fixture["agents"]))
        failures: list[str] = []

        def available(n: int, agent: dict) -> None:
            port = self.omni_ports[n % 2]
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/agent/me/",
                data=b'{"presence": "available"}',
                method="PATCH",
                headers={"Authorization": f"Token {agent['token']}", "Content-Type": "application/json"},
            )
            barrier.wait()
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    response.read()
            except OSError as error:
                failures.append(str(error))

        threads = [threading.Thread(target=available, args=(n, a)) for n, a in enumerate(fixture["agents"])]
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            t0 = time.perf_counter()
            for thread in threads:
                thread.start()
            seconds = None
            while time.perf_counter() - t0 < self.opts.assign_timeout:
                (active,) = conn.execute(
                    "SELECT count(*) FROM conversations_conversation WHERE id = ANY(%s) AND status = 'active'", [ids]
                ).fetchone()
                if active == len(ids):
                    seconds = time.perf_counter() - t0
                    break
                time.sleep(0.02)
            for thread in threads:
                thread.join()
            time.sleep(1)  # anything still racing would show now
            over, max_load, joined = conn.execute(
                """WITH load AS (
                    SELECT a.id, a.capacity, count(c.id) * %s AS used FROM agents_agent a
                    JOIN conversations_conversation c ON c.agent_id = a.id AND c.status = 'active'
                    GROUP BY a.id)
                SELECT count(*) FILTER (WHERE used > capacity), max(used::float / capacity),
                       (SELECT count(*) FROM conversations_message
                        WHERE conversation_id = ANY(%s) AND kind = 'agent_joined')
                FROM load""",
                [fixture["units"], ids],
            ).fetchone()
            (active,) = conn.execute(
                "SELECT count(*) FROM conversations_conversation WHERE id = ANY(%s) AND status = 'active'", [ids]
            ).fetchone()
        return {
            "seconds": round(seconds, 2) if seconds is not None else None,
            "assigned": active,
            "queued": len(ids),
            "agents_over_capacity": over,
            "max_load": round(max_load or 0, 3),
            "agent_joined_messages": joined,
            "failures": len(failures),
        }

    def assign_floor(self) -> dict:
        n, m = self.opts.assign_conversations, self.opts.assign_agents
        subprocess.run(
            [PY, "-m", "bench.floor.assign", "setup", "--dsn", self.dsn, "--conversations", str(n), "--agents", str(m)],
            env=self.env,
            cwd=BASE_DIR,
            check=True,
        )
        racers = [
            subprocess.Popen(
                [PY, "-m", "bench.floor.assign", "race", "--dsn", self.dsn, "--redis", self.redis_url],
                env=self.env,
                cwd=BASE_DIR,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        for racer in racers:
            assert racer.stdout.readline().strip() == "ready"
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            t0 = time.perf_counter()
            conn.execute("UPDATE floor_agent SET available = true")
            for racer in racers:
                racer.stdin.write("go\n")
                racer.stdin.flush()
            outs = [json.loads(racer.stdout.readline()) for racer in racers]
            seconds = time.perf_counter() - t0
            for racer in racers:
                racer.wait()
            active, over = conn.execute(
                """SELECT (SELECT count(*) FROM floor_conversation WHERE id >= 10000000 AND status = 'active'),
                (SELECT count(*) FROM floor_agent a WHERE a.capacity < (SELECT count(*) FROM floor_conversation c
                   WHERE c.agent_id = a.id AND c.status = 'active' AND c.id >= 10000000))"""
            ).fetchone()
        return {
            "seconds": round(seconds, 2),
            "assigned": active,
            "queued": n,
            "agents_over_capacity": over,
            "per_racer": [o["assigned"] for o in outs],
        }


# --- the whole set --------------------------------------------------------------------------------


def run_all(opts) -> dict:
    bench = Bench(opts)
    results: dict = {"runs": [], "options": vars(opts)}
    bench.prepare()
    log("fixtures: customer tokens for idle sockets, 100,000-message histories")
    levels = [int(x) for x in opts.idle_levels.split(",")]
    idle_tokens = WORK / "omni-idle.json"
    if "connections" in opts.figures:
        bench.omni_fixture("idle", "--count", str(max(levels)))
    history_fixture = floor_history_fixture = None
    if "history" in opts.figures:
        bench.omni_fixture("history", "--messages", str(opts.history_messages))
        history_fixture = WORK / "omni-history.json"
        floor_history_fixture = bench.floor_history(opts.history_messages)
        results["explain"] = {
            "omni": json.loads(history_fixture.read_text())["explain"],
            "floor": json.loads(floor_history_fixture.read_text())["explain"],
        }
    bench.start_omni()
    bench.start_floor()
    try:
        for run in range(1, opts.runs + 1):
            log(f"== run {run} of {opts.runs}")
            r: dict = {}
            if {"latency", "throughput", "uploads"} & set(opts.figures):
                bench.omni_fixture("latency", "--customers", str(opts.customers), "--agents", str(opts.agents))
                omni_fixture = WORK / "omni-latency.json"
                floor_fixture = bench.floor_fixture(opts.customers, opts.agents)
            if "latency" in opts.figures:
                for target, fixture in (("omni", omni_fixture), ("floor", floor_fixture)):
                    log(f"latency {target}: {opts.rate}/s for {opts.duration} s")
                    (step,) = bench.messages(target, fixture, str(opts.rate), opts.duration, stop_on_fail=False)
                    r.setdefault("latency", {})[target] = step
                    log(f"  {step}")
            if "throughput" in opts.figures:
                for target, fixture in (("omni", omni_fixture), ("floor", floor_fixture)):
                    log(f"throughput {target}: rates {opts.rates}, {opts.step} s each")
                    steps = bench.messages(target, fixture, opts.rates, opts.step, stop_on_fail=True)
                    passed = [
                        s["rate"]
                        for s in steps
                        if s["lost"] == 0
                        and s["duplicated"] == 0
                        and s["all_p99"] is not None
                        and s["all_p99"] <= 100
                        and s["achieved_rate"] >= 0.95 * s["rate"]
                    ]
                    r.setdefault("throughput", {})[target] = {
                        "max_rate": max(passed) if passed else 0,
                        "steps": steps,
                    }
                    log(
                        f"  max {r['throughput'][target]['max_rate']}/s; steps: "
                        + ", ".join(f"{s['rate']:.0f}/s p99 {s['all_p99']} lost {s['lost']}" for s in steps)
                    )
            if "uploads" in opts.figures:
                for mbps in (opts.upload_mbps, 0.0):
                    uplink = f"{mbps:g} Mbit/s each" if mbps else "unlimited"
                    log(f"latency omni at {opts.rate}/s while {opts.upload_clients} customers upload 10 MB ({uplink})")
                    r.setdefault("uploads", {})["paced" if mbps else "unlimited"] = bench.uploads(omni_fixture, mbps)
                    log(f"  {r['uploads']}")
            if "connections" in opts.figures:
                bench.restart_web()
                for target in ("omni", "floor"):
                    log(f"connections {target}: {levels}")
                    r.setdefault("connections", {})[target] = bench.idle(target, idle_tokens, levels)
                    time.sleep(3)
            if "history" in opts.figures:
                for target, fixture in (("omni", history_fixture), ("floor", floor_history_fixture)):
                    r.setdefault("history", {})[target] = bench.history(target, fixture)
                    log(f"history {target}: {r['history'][target]}")
            if "assignment" in opts.figures:
                r.setdefault("assignment", {})["omni"] = bench.assign_omni()
                log(f"assignment omni: {r['assignment']['omni']}")
                r["assignment"]["floor"] = bench.assign_floor()
                log(f"assignment floor: {r['assignment']['floor']}")
            results["runs"].append(r)
            (WORK / "results.json").write_text(json.dumps(results, indent=1))
    finally:
        bench.stop_all()
    return results


# --- the table ------------------------------------------------------------------------------------


def summarize(values: list[float | None]) -> tuple[float | None, float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None, None
    return statistics.median(values), min(values), max(values)


def fmt(stat, unit: str = "", digits: int = 1) -> str:
    med, lo, hi = stat
    if med is None:
        return "n/a"
    if lo == hi:
        return f"{med:.{digits}f}{unit}"
    return f"{med:.{digits}f}{unit} ({lo:.{digits}f}–{hi:.{digits}f})"


def table(results: dict) -> str:
    runs = results["runs"]
    rows: list[tuple[str, str, str, str, str]] = []

    def pick(*path):
        out = []
        for run in runs:
            value = run
            for key in path:
                if isinstance(value, list) and isinstance(key, int) and -len(value) <= key < len(value):
                    value = value[key]
                    continue
                if not isinstance(value, dict) or key not in value:
                    value = None
                    break
                value = value[key]
            out.append(value)
        return out

    def add(label, omni_path, floor_path, unit="", digits=1, target=""):
        o = summarize(pick(*omni_path))
        f = summarize(pick(*floor_path)) if floor_path else (None, None, None)
        ratio = f"{o[0] / f[0]:.2f}×" if o[0] is not None and f[0] else "—"
        rows.append((label, fmt(o, unit, digits), fmt(f, unit, digits) if floor_path else "—", ratio, target))

    if runs and "latency" in runs[0]:
        rate = results["options"]["rate"]
        for direction, name in (("c2a", "customer → agent"), ("a2c", "agent → customer")):
            for p in (50, 95, 99):
                target = ""
                if direction == "c2a" and p == 50:
                    target = "≤ 2× floor"
                if direction == "c2a" and p == 99:
                    target = "≤ 25 ms"
                add(
                    f"Delivery {name} p{p} at {rate:g}/s",
                    ("latency", "omni", f"{direction}_p{p}"),
                    ("latency", "floor", f"{direction}_p{p}"),
                    " ms",
                    2,
                    target,
                )
        add(
            "Lost at that load (missing echoes + deliveries + seqs)",
            ("latency", "omni", "lost"),
            ("latency", "floor", "lost"),
            "",
            0,
            "0",
        )
        add(
            "Duplicated at that load", ("latency", "omni", "duplicated"), ("latency", "floor", "duplicated"), "", 0, "0"
        )
    if runs and "uploads" in runs[0]:
        clients = results["options"]["upload_clients"]
        rate = results["options"]["rate"]
        for key, uplink in (("paced", f"{results['options']['upload_mbps']:g} Mbit/s each"), ("unlimited", "loopback")):
            for p in (50, 99):
                add(
                    f"Delivery customer → agent p{p} at {rate:g}/s, {clients} customers uploading 10 MB ({uplink})",
                    ("uploads", key, "latency", f"c2a_p{p}"),
                    None,
                    " ms",
                    2,
                    "≤ 25 ms" if (p, key) == (99, "paced") else "",
                )
            add(f"Lost meanwhile ({uplink})", ("uploads", key, "latency", "lost"), None, "", 0, "0")
            add(f"10 MB uploads done meanwhile ({uplink})", ("uploads", key, "uploads", "done"), None, "", 0)
            add(
                f"Server processes' resident memory: growth to the peak while uploading ({uplink})",
                ("uploads", key, "rss_growth_mib"),
                None,
                " MiB",
                1,
                f"< {clients} × 10 MB",
            )
    if runs and "throughput" in runs[0]:
        add(
            "Throughput: highest rate with p99 ≤ 100 ms, nothing lost",
            ("throughput", "omni", "max_rate"),
            ("throughput", "floor", "max_rate"),
            "/s",
            0,
            "≥ 0.70× floor",
        )
        # The first (lowest) rung: latency where Omnichannel still keeps up, both directions.
        low = runs[0]["throughput"]["omni"]["steps"][0]["rate"] if runs[0]["throughput"]["omni"]["steps"] else None
        if low is not None:
            for direction, name in (("c2a", "customer → agent"), ("a2c", "agent → customer")):
                for p in (50, 99):
                    add(
                        f"Delivery {name} p{p} at {low:g}/s (first throughput step, {results['options']['step']:g} s)",
                        ("throughput", "omni", "steps", 0, f"{direction}_p{p}"),
                        ("throughput", "floor", "steps", 0, f"{direction}_p{p}"),
                        " ms",
                        2,
                    )
    if runs and "connections" in runs[0]:
        levels = sorted(int(level) for level in runs[0]["connections"]["omni"])
        top = levels[-1]
        add(
            f"Idle sockets held by one worker (of {top:,})",
            ("connections", "omni", _k(runs, top), "held"),
            ("connections", "floor", _k(runs, top), "held"),
            "",
            0,
            "10,000",
        )
        for level in levels:
            add(
                f"Resident memory per idle socket at {level:,}",
                ("connections", "omni", _k(runs, level), "kib_per_socket"),
                ("connections", "floor", _k(runs, level), "kib_per_socket"),
                " KiB",
                1,
                "≤ 25 KiB",
            )
        for level in levels:
            add(
                f"Worker CPU with {level:,} idle sockets (pings every 20 s)",
                ("connections", "omni", _k(runs, level), "cpu_pct"),
                ("connections", "floor", _k(runs, level), "cpu_pct"),
                " %",
                2,
                "< 5 % at 2,000" if level == 2000 else "",
            )
    if runs and "history" in runs[0]:
        n = results["options"]["history_messages"]
        for page in ("latest", "middle"):
            for p in ("p50", "p99"):
                add(
                    f"History ({n:,} messages): {page} page {p}",
                    ("history", "omni", page, p),
                    ("history", "floor", page, p),
                    " ms",
                    2,
                    "≤ 10 ms" if (page, p) == ("latest", "p99") else "",
                )
    if runs and "assignment" in runs[0]:
        o = runs[0]["assignment"]["omni"]
        add(
            f"Assignment: {o['queued']:,} queued, {results['options']['assign_agents']} agents available at once",
            ("assignment", "omni", "seconds"),
            ("assignment", "floor", "seconds"),
            " s",
            2,
            "≤ 5 s",
        )
        add(
            "Agents over capacity after assignment",
            ("assignment", "omni", "agents_over_capacity"),
            ("assignment", "floor", "agents_over_capacity"),
            "",
            0,
            "0",
        )
    lines = [
        "| figure | Omnichannel | floor | ratio | target |",
        "|---|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows),
    ]
    explain = results.get("explain")
    if explain:
        scan = (
            "index scan"
            if "Index" in explain["omni"]["latest"] and "Seq Scan" not in explain["omni"]["latest"]
            else "NOT an index scan"
        )
        lines.append(f"\nEXPLAIN of the latest page: {scan} ({explain['omni']['latest'].splitlines()[0].strip()})")
    return "\n".join(lines)


def _k(runs, level) -> str:
    return str(level) if str(level) in runs[0]["connections"]["omni"] else level


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    with psycopg.connect(Bench._dsn(os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    rv = redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)).info()["redis_version"]
    return (
        f"{os.cpu_count()} cores ({cpu}), {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"PostgreSQL {pg}, Redis {rv}"
    )


# --- smoke ------------------------------------------------------------------------------------------


def smoke(opts) -> int:
    """Two uvicorn processes, a few customers and agents, a few seconds of messages both ways;
    fails unless every frame arrived exactly once."""
    bench = Bench(opts)
    bench.prepare()
    bench.start_omni(celery=False)
    try:
        bench.omni_fixture("latency", "--customers", str(opts.customers), "--agents", str(opts.agents))
        (step,) = bench.messages("omni", WORK / "omni-latency.json", str(opts.rate), opts.duration, stop_on_fail=False)
    finally:
        bench.stop_all()
    print(
        f"smoke: {step['sent']} messages at {opts.rate:g}/s over {len(bench.omni_ports)} server processes, "
        f"customer → agent p50 {step['c2a_p50']} ms p99 {step['c2a_p99']} ms, "
        f"agent → customer p50 {step['a2c_p50']} ms p99 {step['a2c_p99']} ms, errors {step['errors']}"
    )
    print(f"lost={step['lost']} duplicated={step['duplicated']}")
    ok = step["lost"] == 0 and step["duplicated"] == 0 and step["errors"] == 0 and step["c2a_n"] > 0
    return 0 if ok else 1


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few seconds of small load (CI)")
    parser.add_argument("--runs", type=int, default=int(env("BENCH_RUNS", "3")))
    parser.add_argument("--figures", default=env("BENCH_FIGURES", ",".join(FIGURES)))
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--rate", type=float, default=300, help="messages/s of the latency figure")
    parser.add_argument("--duration", type=float, default=float(env("BENCH_DURATION", "60")))
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--grace", type=float, default=5, help="seconds a late frame may still arrive")
    ladder = "50,100,150,200,300,500,700,850,1000,1200,1400,1700,2000,2500"
    parser.add_argument("--rates", default=env("BENCH_RATES", ladder), help="messages/s of the throughput steps")
    parser.add_argument(
        "--step", type=float, default=float(env("BENCH_STEP", "10")), help="seconds per throughput step"
    )
    parser.add_argument("--idle-levels", default=env("BENCH_IDLE_LEVELS", "1000,2000,5000,10000"))
    parser.add_argument("--idle-window", type=float, default=float(env("BENCH_IDLE_WINDOW", "20")))
    parser.add_argument("--settle", type=float, default=3)
    parser.add_argument("--history-messages", type=int, default=100_000)
    parser.add_argument("--history-requests", type=int, default=1000)
    parser.add_argument("--assign-conversations", type=int, default=2000)
    parser.add_argument("--assign-agents", type=int, default=100)
    parser.add_argument("--assign-timeout", type=float, default=180)
    parser.add_argument("--upload-clients", type=int, default=5, help="customers uploading in the uploads figure")
    parser.add_argument(
        "--upload-mbps",
        type=float,
        default=100.0,
        help="each uploading customer's uplink (Mbit/s) in the uploads figure",
    )
    parser.add_argument("--out", default=str(WORK / "results.md"))
    parser.add_argument("--table", metavar="RESULTS_JSON", help="only print the table of an earlier results.json")
    opts = parser.parse_args()
    opts.figures = [f.strip() for f in opts.figures.split(",") if f.strip()]
    unknown = set(opts.figures) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figures {sorted(unknown)}; choose from {', '.join(FIGURES)}")
    if opts.smoke:
        if "BENCH_DATABASE_URL" not in os.environ:
            os.environ["BENCH_DATABASE_URL"] = DEFAULT_DB + "_smoke"
        if "--customers" not in sys.argv:
            opts.customers, opts.agents = 40, 4
        if "--rate" not in sys.argv:
            opts.rate = 40
        if "--duration" not in sys.argv and "BENCH_DURATION" not in os.environ:
            opts.duration = 3
        if "--grace" not in sys.argv:
            opts.grace = 15  # a busy CI machine is slow, not lossy
        sys.exit(smoke(opts))
    if opts.table:
        print(report(json.loads(Path(opts.table).read_text())))
        return
    started = time.monotonic()
    results = run_all(opts)
    results.update(
        date=time.strftime("%Y-%m-%d"),
        machine=machine(),
        commit=_commit(),
        minutes=round((time.monotonic() - started) / 60),
    )
    (WORK / "results.json").write_text(json.dumps(results, indent=1))
    text = report(results)
    Path(opts.out).write_text(text)
    print(text)


def report(results: dict) -> str:
    runs = len(results["runs"])
    return (
        f"Measured {results.get('date', '?')} at commit {results.get('commit', '?')} on {results.get('machine', '?')}; "
        f"medians of {runs} runs (min–max); `python -m bench.run` took {results.get('minutes', '?')} min.\n\n"
        f"{table(results)}\n"
    )


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BASE_DIR, capture_output=True, text=True)  # noqa: S607
    return out.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
