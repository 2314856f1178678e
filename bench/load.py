"""The load generator: a separate process speaking the protocol (docs/protocol.md) through the ``websockets``
library to Omnichannel (customers with JWTs of the persistent demo widget, agents with DRF
tokens) or to the floor (bench/floor/server.py), spreading sockets over the server processes.

    python -m bench.load messages --target omni --ports 8101,8102 --fixture F --rates 300 --step 60
    python -m bench.load idle --target omni --port 8101 --fixture F --levels 1000,5000,10000
    python -m bench.load history --target omni --port 8101 --fixture F --requests 1000
    python -m bench.load uploads --ports 8101,8102 --fixture F --clients 5 --size 10000000

Every mode prints one JSON object per line on stdout (the idle mode waits for a line on
stdin between levels, so bench/run.py can measure the server meanwhile).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import itertools
import json
import sys
import time
import uuid

import psycopg
from websockets.asyncio.client import connect


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def dumps(frame) -> str:
    return json.dumps(frame, separators=(",", ":"))


class Target:
    """How to reach one kind of server: URLs and auth frames."""

    def __init__(self, kind: str, ports: list[int]) -> None:
        self.kind, self.ports = kind, ports

    def customer(self, port: int, conversation: dict | None, token: str | None) -> tuple[str, dict, dict]:
        if self.kind == "omni":
            return f"ws://127.0.0.1:{port}/ws/widget/demo-persistent/", {}, {"type": "auth", "token": token}
        return f"ws://127.0.0.1:{port}/", {}, {"type": "auth", "token": f"c:{conversation['id']}"}

    def agent(self, port: int, agent: dict) -> tuple[str, dict, dict]:
        if self.kind == "omni":
            return (
                f"ws://127.0.0.1:{port}/ws/agent/",
                {"origin": f"http://127.0.0.1:{port}"},
                {"type": "auth", "token": agent["token"]},
            )
        return f"ws://127.0.0.1:{port}/", {}, {"type": "auth", "token": f"a:{agent['id']}"}

    def last_seqs(self, dsn: str, ids: list[int]) -> dict[int, int]:
        table = "conversations_conversation" if self.kind == "omni" else "floor_conversation"
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(f"SELECT id, last_seq FROM {table} WHERE id = ANY(%s)", [ids]).fetchall()  # noqa: S608
        return dict(rows)


async def open_socket(
    url: str, extra: dict, auth: dict, after_seq: int | None = None, *, open_timeout: float = 60, max_queue=None
):
    ws = await connect(
        url, compression=None, ping_interval=None, open_timeout=open_timeout, max_queue=max_queue, **extra
    )
    if after_seq is not None:
        auth = {**auth, "after_seq": after_seq}
    await ws.send(dumps(auth))
    while True:
        frame = json.loads(await ws.recv())
        if frame["type"] == "ready":
            ws.ready_frame = frame  # what the server replayed after after_seq
            return ws
        if frame["type"] == "error":
            raise RuntimeError(f"auth refused: {frame}")


# --- Messages: latency, loss, duplicates, throughput --------------------------------------------


class Side:
    """One socket's view: every message frame it receives, checked by seq and client_id."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seqs: dict[int, set[int]] = {}
        self.client_ids: set[str] = set()
        self.duplicated = 0


class MessageLoad:
    def __init__(self, target: Target, fixture: dict, dsn: str) -> None:
        self.target, self.fixture, self.dsn = target, fixture, dsn
        self.conversations = fixture["conversations"]
        self.by_id = {c["id"]: c for c in self.conversations}
        self.sent: dict[str, tuple[float, str]] = {}  # client_id -> (sent at, direction)
        self.acked: set[str] = set()
        self.delivered: set[str] = set()
        self.latency: dict[str, list[float]] = {"c2a": [], "a2c": []}
        self.customer_ws: dict[int, object] = {}
        self.agent_ws: dict[int, object] = {}
        self.customer_side: dict[int, Side] = {}
        self.agent_side: dict[int, Side] = {}
        self.errors: list[dict] = []
        self.run_tag = uuid.uuid4().hex[:8]
        self.tasks: list[asyncio.Future] = []
        self.counter = itertools.count()  # client ids stay unique across steps

    async def connect_all(self) -> None:
        ports = self.target.ports
        ids = [c["id"] for c in self.conversations]
        self.start_seqs = self.target.last_seqs(self.dsn, ids)
        gate = asyncio.Semaphore(50)

        async def customer(n: int, conv: dict) -> None:
            async with gate:
                url, extra, auth = self.target.customer(ports[n % len(ports)], conv, conv.get("token"))
                ws = await open_socket(url, extra, auth, after_seq=self.start_seqs.get(conv["id"], 0))
            self.customer_ws[conv["id"]] = ws
            side = self.customer_side[conv["id"]] = Side(f"customer {conv['id']}")
            self.tasks.append(asyncio.ensure_future(self.reader(ws, side, "customer")))

        async def agent(n: int, agent: dict) -> None:
            async with gate:
                url, extra, auth = self.target.agent(ports[n % len(ports)], agent)
                ws = await open_socket(url, extra, auth)
            self.agent_ws[agent["id"]] = ws
            side = self.agent_side[agent["id"]] = Side(f"agent {agent['id']}")
            self.tasks.append(asyncio.ensure_future(self.reader(ws, side, "agent")))

        await asyncio.gather(*(agent(n, a) for n, a in enumerate(self.fixture["agents"])))
        await asyncio.gather(*(customer(n, c) for n, c in enumerate(self.conversations)))

    async def reader(self, ws, side: Side, role: str) -> None:
        own = "customer" if role == "customer" else "agent"
        try:
            async for text in ws:
                now = time.perf_counter()
                frame = json.loads(text)
                kind = frame.get("type")
                if kind == "error":
                    self.errors.append(frame)
                    continue
                if kind != "message":
                    continue
                message = frame["message"]
                seqs = side.seqs.setdefault(message["conversation_id"], set())
                if message["seq"] in seqs:
                    side.duplicated += 1
                    continue
                seqs.add(message["seq"])
                client_id = message.get("client_id")
                if client_id is None or client_id not in self.sent:
                    continue
                if client_id in side.client_ids:
                    side.duplicated += 1
                    continue
                side.client_ids.add(client_id)
                sent_at, direction = self.sent[client_id]
                if message["sender"] == own:
                    self.acked.add(client_id)
                else:
                    self.delivered.add(client_id)
                    self.latency[direction].append((now - sent_at) * 1000)
        except Exception as error:  # noqa: BLE001 - a socket closed under load: its frames count as lost
            self.errors.append({"type": "closed", "detail": repr(error)})

    async def step(self, rate: float, duration: float, warmup: float, grace: float) -> dict:
        """Offer ``rate`` messages/s (half each way) for ``warmup + duration`` seconds;
        latencies of the last ``duration`` seconds count."""
        for values in self.latency.values():
            values.clear()
        n_conv = len(self.conversations)
        counter = self.counter
        start = time.perf_counter()
        measure_from = start + warmup
        end = measure_from + duration
        sent = 0
        sent_measured = 0
        send_errors = 0
        step_ids: list[str] = []
        tick = 0.002
        while True:
            now = time.perf_counter()
            if now >= end:
                break
            due = int((now - start) * rate)
            while sent < due:
                k = next(counter)
                conv = self.conversations[(k // 2) % n_conv]
                direction = "c2a" if k % 2 == 0 else "a2c"
                client_id = f"{self.run_tag}-{k}"
                body = f"bench message {k}"
                if direction == "c2a":
                    ws = self.customer_ws[conv["id"]]
                    frame = {"type": "message.send", "client_id": client_id, "body": body}
                else:
                    ws = self.agent_ws[conv["agent_id"]]
                    frame = {
                        "type": "message.send",
                        "conversation_id": conv["id"],
                        "client_id": client_id,
                        "body": body,
                    }
                t = time.perf_counter()
                self.sent[client_id] = (t if t >= measure_from else float("-inf"), direction)
                step_ids.append(client_id)
                try:
                    await ws.send(dumps(frame))
                except Exception:  # noqa: BLE001
                    send_errors += 1
                sent += 1
                if t >= measure_from:
                    sent_measured += 1
            await asyncio.sleep(tick)
        elapsed = time.perf_counter() - start
        # Wait for stragglers, then check every socket against the database's last_seq.
        deadline = time.perf_counter() + grace
        while time.perf_counter() < deadline:
            if all(c in self.delivered and c in self.acked for c in step_ids[-200:]):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        for values in self.latency.values():
            values[:] = [v for v in values if v >= 0 and v != float("inf")]
        undelivered = sum(1 for c in step_ids if c not in self.delivered)
        unacked = sum(1 for c in step_ids if c not in self.acked)
        final = self.target.last_seqs(self.dsn, list(self.by_id))
        missing = 0
        for conv in self.conversations:
            expected = set(range(self.start_seqs.get(conv["id"], 0) + 1, final[conv["id"]] + 1))
            for side_seqs in (
                self.customer_side[conv["id"]].seqs.get(conv["id"], set()),
                self.agent_side[conv["agent_id"]].seqs.get(conv["id"], set()),
            ):
                missing += len(expected - side_seqs)
        sides = itertools.chain(self.customer_side.values(), self.agent_side.values())
        duplicated = sum(side.duplicated for side in sides)
        both = self.latency["c2a"] + self.latency["a2c"]
        result = {
            "rate": rate,
            "achieved_rate": round(sent_measured / duration, 1) if duration else 0,
            "sent": sent,
            "elapsed": round(elapsed, 2),
            "lost": missing + undelivered + unacked,
            "missing_seqs": missing,
            "undelivered": undelivered,
            "unacked": unacked,
            "duplicated": duplicated,
            "errors": len(self.errors),
            "error_sample": self.errors[:3],
            "send_errors": send_errors,
        }
        for name, values in (("c2a", self.latency["c2a"]), ("a2c", self.latency["a2c"]), ("all", both)):
            for p in (50, 95, 99):
                value = percentile(values, p)
                result[f"{name}_p{p}"] = round(value, 2) if value is not None else None
            result[f"{name}_n"] = len(values)
        self.errors.clear()
        return result


async def run_messages(args) -> None:
    target = Target(args.target, [int(p) for p in args.ports.split(",")])
    with open(args.fixture) as handle:
        fixture = json.load(handle)
    load = MessageLoad(target, fixture, args.dsn)
    t0 = time.perf_counter()
    await load.connect_all()
    await asyncio.sleep(0.5)
    print(dumps({"event": "connected", "seconds": round(time.perf_counter() - t0, 2)}), flush=True)
    rates = [float(r) for r in args.rates.split(",")]
    for rate in rates:
        result = await load.step(rate, args.step, args.warmup, args.grace)
        print(dumps({"event": "step", **result}), flush=True)
        ok = (
            result["lost"] == 0
            and result["duplicated"] == 0
            and result["all_p99"] is not None
            and result["all_p99"] <= args.p99_limit
            and result["achieved_rate"] >= 0.95 * rate
        )
        if args.stop_on_fail and not ok:
            break
    for ws in itertools.chain(load.customer_ws.values(), load.agent_ws.values()):
        await ws.close()


# --- Idle sockets ---------------------------------------------------------------------------------


async def run_idle(args) -> None:
    target = Target(args.target, [args.port])
    with open(args.fixture) as handle:
        tokens = json.load(handle)["tokens"]
    sockets = []
    gate = asyncio.Semaphore(args.concurrency)
    failures = 0

    async def one(n: int) -> None:
        nonlocal failures
        async with gate:
            url, extra, auth = target.customer(args.port, {"id": 1_000_000 + n}, tokens[n % len(tokens)])
            try:
                ws = await open_socket(url, extra, auth)
            except Exception:  # noqa: BLE001
                failures += 1
                return
            sockets.append(ws)

    loop = asyncio.get_running_loop()
    for level in [int(x) for x in args.levels.split(",")]:
        t0 = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(len(sockets), level)))
        held = sum(1 for ws in sockets if ws.state.name == "OPEN")
        print(
            dumps(
                {
                    "event": "level",
                    "level": level,
                    "held": held,
                    "failures": failures,
                    "open_seconds": round(time.perf_counter() - t0, 2),
                }
            ),
            flush=True,
        )
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line.strip():
            break
        held = sum(1 for ws in sockets if ws.state.name == "OPEN")
        print(dumps({"event": "held", "level": level, "held": held}), flush=True)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


# --- History over REST -----------------------------------------------------------------------------


def run_history(args) -> None:
    with open(args.fixture) as handle:
        fixture = json.load(handle)
    cid, middle = fixture["conversation_id"], fixture["messages"] // 2
    if args.target == "omni":
        base = f"/api/v1/agent/conversations/{cid}/messages/"
        headers = {"Authorization": f"Token {fixture['token']}", "Host": "127.0.0.1"}
    else:
        base = f"/history/{cid}"
        headers = {"Host": "127.0.0.1"}
    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=30)
    out = {}
    for name, query in (("latest", "?limit=50"), ("middle", f"?before_seq={middle}&limit=50")):
        times = []
        for n in range(args.requests + args.warmup_requests):
            t = time.perf_counter()
            conn.request("GET", base + query, headers=headers)
            response = conn.getresponse()
            body = response.read()
            elapsed = (time.perf_counter() - t) * 1000
            if response.status != 200:
                raise SystemExit(f"history {name}: HTTP {response.status} {body[:200]!r}")
            if n >= args.warmup_requests:
                times.append(elapsed)
        page = json.loads(body)["messages"]
        assert len(page) == 50, len(page)
        out[name] = {"p50": round(percentile(times, 50), 2), "p99": round(percentile(times, 99), 2), "n": len(times)}
    print(dumps({"event": "history", **out}), flush=True)


UPLOAD_WIDGET = "demo-persistent"


def run_uploads(args) -> None:
    """``--clients`` customers each upload a ``--size`` byte PDF to the widget's attachment
    endpoint, one after the other, until stdin closes (bench/run.py measures the message path
    meanwhile); then one JSON line: uploads done, refused, and their durations. ``--mbps``:
    each client's uplink in megabits per second (0: as fast as loopback goes)."""
    import threading

    with open(args.fixture) as handle:
        fixture = json.load(handle)
    ports = [int(p) for p in args.ports.split(",")]
    boundary = "bench-" + uuid.uuid4().hex
    pdf = b"%PDF-1.4\n" + b"0" * (args.size - 16) + b"\n%%EOF\n"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    body = head + pdf + f"\r\n--{boundary}--\r\n".encode()
    stop = threading.Event()
    done: list[float] = []
    refused: list[str] = []

    def client(n: int) -> None:
        token = fixture["conversations"][n]["token"]
        port = ports[n % len(ports)]
        path = f"/api/v1/widget/{UPLOAD_WIDGET}/conversation/attachments/"
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(body)),
            "Host": "127.0.0.1",
        }
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        chunk = 64 * 1024
        per_chunk = chunk * 8 / (args.mbps * 1e6) if args.mbps else 0.0
        while not stop.is_set():
            t = time.perf_counter()
            conn.putrequest("POST", path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            for n, start in enumerate(range(0, len(body), chunk)):
                conn.send(body[start : start + chunk])
                if per_chunk:  # the uplink: each chunk leaves no earlier than its time
                    delay = t + (n + 1) * per_chunk - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
            response = conn.getresponse()
            answer = response.read()
            if response.status == 201:
                done.append(time.perf_counter() - t)
            else:
                refused.append(f"{response.status} {answer[:120]!r}")
                time.sleep(0.5)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(args.clients)]
    for thread in threads:
        thread.start()
    print(dumps({"event": "uploading"}), flush=True)
    sys.stdin.read()  # until bench/run.py closes it
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    seconds = sorted(done)
    print(
        dumps(
            {
                "event": "uploads",
                "done": len(done),
                "refused": len(refused),
                "refusals": refused[:3],
                "megabytes": round(len(done) * args.size / 1e6),
                "p50_s": round(percentile(seconds, 50), 2) if seconds else None,
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    m = sub.add_parser("messages")
    m.add_argument("--target", choices=["omni", "floor"], required=True)
    m.add_argument("--ports", required=True)
    m.add_argument("--fixture", required=True)
    m.add_argument("--dsn", required=True)
    m.add_argument("--rates", default="300")
    m.add_argument("--step", type=float, default=60)
    m.add_argument("--warmup", type=float, default=2)
    m.add_argument("--grace", type=float, default=5)
    m.add_argument("--p99-limit", type=float, default=100)
    m.add_argument("--stop-on-fail", action="store_true")
    i = sub.add_parser("idle")
    i.add_argument("--target", choices=["omni", "floor"], required=True)
    i.add_argument("--port", type=int, required=True)
    i.add_argument("--fixture", required=True)
    i.add_argument("--levels", default="1000,2000,5000,10000")
    i.add_argument("--concurrency", type=int, default=100)
    u = sub.add_parser("uploads", help="customers uploading attachments without pause (stdin closes: stop)")
    u.add_argument("--ports", required=True)
    u.add_argument("--fixture", required=True)
    u.add_argument("--clients", type=int, default=5)
    u.add_argument("--size", type=int, default=10_000_000)
    u.add_argument("--mbps", type=float, default=0.0, help="each client's uplink, megabits/s (0: unlimited)")
    h = sub.add_parser("history")
    h.add_argument("--target", choices=["omni", "floor"], required=True)
    h.add_argument("--port", type=int, required=True)
    h.add_argument("--fixture", required=True)
    h.add_argument("--requests", type=int, default=1000)
    h.add_argument("--warmup-requests", type=int, default=50)
    args = parser.parse_args()
    if args.mode == "history":
        run_history(args)
        return
    if args.mode == "uploads":
        run_uploads(args)
        return
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    asyncio.run(run_messages(args) if args.mode == "messages" else run_idle(args))


if __name__ == "__main__":
    main()
