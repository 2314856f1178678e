"""Customers and agents that behave like the real clients under faults, on the benchmark's load
generator (bench/load.py: its targets, sockets and fixtures), plus the ledger that proves
nothing was lost or shown twice.

A client keeps every message it was shown by ``seq``. It reconnects when its socket dies (to
any live worker), resumes from ``after_seq`` (customers) or fills from REST (agents), fills a
gap it notices over REST, and resends an unacknowledged message with the same ``client_id``
(the server stores it once). The ledger counts what the *server* did wrong: a seq delivered
twice on one socket, a seq never shown, a message not stored exactly once, an error frame
with a code the protocol does not allow here."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field

from websockets.exceptions import ConnectionClosed

from bench.load import Target, dumps, open_socket

RETRYABLE = {"unavailable", "rate_limited"}
RESEND_AFTER = 3.0
GAP_WAIT = 0.5


@dataclass
class Ledger:
    duplicated: list[str] = field(default_factory=list)
    bad_errors: list[dict] = field(default_factory=list)
    retryable_errors: int = 0
    reconnects: int = 0
    closed: list[str] = field(default_factory=list)
    filled: int = 0  # seqs a client had to fetch over REST (its socket missed them)


class Client:
    """What customers and agents share: per-conversation seqs, pending sends, reconnection."""

    role = ""

    def __init__(self, ports: list[int], ledger: Ledger, start_seqs: dict[int, int]) -> None:
        self.ports, self.ledger = ports, ledger
        self.held: dict[int, set[int]] = {cid: set(range(1, s + 1)) for cid, s in start_seqs.items()}
        self.pending: dict[str, tuple[dict, float]] = {}  # client_id -> (frame, last sent)
        self.acked: set[str] = set()
        self.resent: set[str] = set()
        self.live: set[tuple[int, int]] = set()  # (conversation, seq) that came over the socket
        self.ws = None
        self.ready = asyncio.Event()
        self.stopped = False
        self.port_cycle = itertools.cycle(ports)
        self.task: asyncio.Task | None = None
        self.gap_tasks: set[asyncio.Task] = set()
        self.connected_at: list[float] = []

    # -- connection --

    def url_and_auth(self, port: int) -> tuple[str, dict, dict]:
        raise NotImplementedError

    async def after_ready(self, frame: dict) -> None:
        pass

    async def start(self) -> None:
        self.task = asyncio.ensure_future(self.run())
        await asyncio.wait_for(self.ready.wait(), 60)

    async def run(self) -> None:
        first = True
        while not self.stopped:
            port = next(self.port_cycle)
            try:
                url, extra, auth = self.url_and_auth(port)
                extra = {**extra, "max_size": None}  # a ready frame may replay 200 long messages
                self.ws = await asyncio.wait_for(open_socket(url, extra, auth, **self.resume(), open_timeout=10), 15)
            except (TimeoutError, OSError, ConnectionClosed, RuntimeError):
                await asyncio.sleep(0.2)
                continue
            if not first:
                self.ledger.reconnects += 1
            first = False
            self.connected_at.append(time.monotonic())
            seen_here: set[tuple[int, int]] = set()
            try:
                await self.after_ready(self.ws.ready_frame)
                self.ready.set()
                for frame, _ in list(self.pending.values()):
                    self.resent.add(frame["client_id"])
                    await self.ws.send(dumps(frame))
                async for text in self.ws:
                    await self.on_frame(json.loads(text), seen_here)
            except ConnectionClosed as closed:
                self.ledger.closed.append(f"{self.role} {closed.rcvd.code if closed.rcvd else 'abnormal'}")
            finally:
                self.ready.clear()
                self.ws = None
            await asyncio.sleep(0.1)

    def resume(self) -> dict:
        return {}

    async def stop(self) -> None:
        self.stopped = True
        if self.ws is not None:
            await self.ws.close()
        if self.task:
            self.task.cancel()
        for task in self.gap_tasks:
            task.cancel()

    # -- frames --

    async def on_frame(self, frame: dict, seen_here: set[tuple[int, int]]) -> None:
        kind = frame.get("type")
        if kind == "error":
            if frame.get("code") in RETRYABLE:
                self.ledger.retryable_errors += 1
            else:
                self.ledger.bad_errors.append(frame)
            return
        if kind != "message":
            return
        self.take(frame["message"], seen_here)

    def take(self, message: dict, seen_here: set[tuple[int, int]] | None) -> None:
        cid, seq = message["conversation_id"], message["seq"]
        if seen_here is not None:
            resent_echo = message.get("client_id") in self.resent and message["sender"] == self.role
            if (cid, seq) in seen_here and not resent_echo:  # each resend is acknowledged again
                self.ledger.duplicated.append(f"{self.role} got seq {seq} of {cid} twice on one socket")
            seen_here.add((cid, seq))
        held = self.held.setdefault(cid, set())
        if message.get("client_id") in self.pending and message["sender"] == self.role:
            del self.pending[message["client_id"]]
            self.acked.add(message["client_id"])
        if seq in held:
            return
        held.add(seq)
        if seen_here is not None:
            self.live.add((cid, seq))
        top = self.contiguous(cid)
        if seq > top + 1 and seen_here is not None:
            task = asyncio.ensure_future(self.fill_later(cid, top))
            self.gap_tasks.add(task)
            task.add_done_callback(self.gap_tasks.discard)

    def contiguous(self, cid: int) -> int:
        held, top = self.held.get(cid, set()), 0
        while top + 1 in held:
            top += 1
        return top

    async def fill_later(self, cid: int, after: int) -> None:
        await asyncio.sleep(GAP_WAIT)  # a frame of another process may just be behind
        if self.contiguous(cid) == after:
            await self.fill(cid)

    async def fill(self, cid: int) -> int:
        """Fetch what this client misses of a conversation over REST; how many it was."""
        before = len(self.held.get(cid, ()))
        after = self.contiguous(cid)
        while True:
            try:
                page = await asyncio.to_thread(self.get_page, cid, after)
            except OSError:
                return 0  # the server is down now; the next fill (or reconnect) gets it
            for message in page["messages"]:
                self.take(message, None)
            if not page["has_more"] or not page["messages"]:
                break
            after = page["messages"][-1]["seq"]
        got = len(self.held.get(cid, ())) - before
        self.ledger.filled += got
        return got

    def get_page(self, cid: int, after: int) -> dict:
        raise NotImplementedError

    def _get(self, path: str, header: str) -> dict:
        last = None
        for port in self.ports:
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": header})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError:
                raise
            except OSError as error:
                last = error
        raise last

    # -- sending --

    async def send(self, frame: dict) -> str:
        client_id = uuid.uuid4().hex
        frame = {**frame, "type": "message.send", "client_id": client_id}
        self.pending[client_id] = (frame, time.monotonic())
        if self.ws is not None:
            try:
                await self.ws.send(dumps(frame))
            except ConnectionClosed:
                pass  # resent after the reconnect
        return client_id

    async def resend_due(self) -> None:
        """An unacknowledged message goes again, with the same client_id."""
        now = time.monotonic()
        for client_id, (frame, at) in list(self.pending.items()):
            if now - at >= RESEND_AFTER and self.ws is not None:
                self.pending[client_id] = (frame, now)
                self.resent.add(client_id)
                try:
                    await self.ws.send(dumps(frame))
                except ConnectionClosed:
                    pass


class Customer(Client):
    role = "customer"

    def __init__(self, conversation: dict, ports, ledger, start_seqs, widget_key: str = "demo-persistent") -> None:
        super().__init__(ports, ledger, {conversation["id"]: start_seqs[conversation["id"]]})
        self.conversation, self.widget_key = conversation, widget_key
        self.cid = conversation["id"]

    def url_and_auth(self, port: int):
        return Target("omni", self.ports).customer(port, self.conversation, self.conversation["token"])

    def resume(self) -> dict:
        return {"after_seq": self.contiguous(self.cid)}

    async def after_ready(self, frame: dict) -> None:
        for message in frame.get("messages") or []:
            self.take(message, None)

    def get_page(self, cid: int, after: int) -> dict:
        return self._get(
            f"/api/v1/widget/{self.widget_key}/conversation/messages/?after_seq={after}&limit=200",
            f"Bearer {self.conversation['token']}",
        )

    async def say(self, body: str) -> str:
        return await self.send({"body": body})


class Agent(Client):
    role = "agent"

    def __init__(self, agent: dict, conversation_ids: list[int], ports, ledger, start_seqs) -> None:
        super().__init__(ports, ledger, {cid: start_seqs[cid] for cid in conversation_ids})
        self.agent, self.conversation_ids = agent, conversation_ids

    def url_and_auth(self, port: int):
        return Target("omni", self.ports).agent(port, self.agent)

    async def after_ready(self, frame: dict) -> None:
        # The agent socket has no after_seq: what happened while it was away comes over REST.
        if self.connected_at[:-1]:
            for cid in self.conversation_ids:
                await self.fill(cid)

    def get_page(self, cid: int, after: int) -> dict:
        return self._get(
            f"/api/v1/agent/conversations/{cid}/messages/?after_seq={after}&limit=200",
            f"Token {self.agent['token']}",
        )

    async def say(self, cid: int, body: str) -> str:
        return await self.send({"conversation_id": cid, "body": body})


class Chat:
    """Everyone of a bench ``latency`` fixture, talking; then the checks."""

    def __init__(self, stack, fixture: dict, ports: list[int]) -> None:
        self.stack, self.fixture, self.ports = stack, fixture, ports
        self.ledger = Ledger()
        ids = [c["id"] for c in fixture["conversations"]]
        self.start_seqs = dict(
            stack.sql("SELECT id, last_seq FROM conversations_conversation WHERE id = ANY(%s)", [ids])
        )
        by_agent: dict[int, list[int]] = {}
        for conv in fixture["conversations"]:
            by_agent.setdefault(conv["agent_id"], []).append(conv["id"])
        rotate = itertools.cycle([ports, ports[::-1]])
        self.customers = [Customer(c, next(rotate), self.ledger, self.start_seqs) for c in fixture["conversations"]]
        self.agents = {
            a["id"]: Agent(a, by_agent.get(a["id"], []), next(rotate), self.ledger, self.start_seqs)
            for a in fixture["agents"]
        }
        self.sent: list[str] = []
        self.counter = itertools.count()

    @property
    def clients(self) -> list[Client]:
        return [*self.agents.values(), *self.customers]

    async def connect(self) -> None:
        await asyncio.gather(*(c.start() for c in self.agents.values()))
        await asyncio.gather(*(c.start() for c in self.customers))

    async def talk(self, seconds: float, rate: float) -> None:
        """``rate`` messages a second, alternately customer → agent and agent → customer."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            n = next(self.counter)
            customer = self.customers[(n // 2) % len(self.customers)]
            if n % 2 == 0:
                self.sent.append(await customer.say(f"customer says {n}"))
            else:
                agent = self.agents[customer.conversation["agent_id"]]
                self.sent.append(await agent.say(customer.cid, f"agent says {n}"))
            for client in self.clients:
                await client.resend_due()
            await asyncio.sleep(1 / rate)

    async def settle(self, timeout: float = 60) -> None:
        """Until every message is acknowledged and every client holds every seq (filling what
        it lacks once its socket is back, as the real clients do on reconnect)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for client in self.clients:
                await client.resend_due()
            if not any(c.pending for c in self.clients) and not self.missing():
                return
            await asyncio.sleep(0.5)
            if time.monotonic() > deadline - timeout / 2:
                for client in self.clients:
                    if client.ws is not None:
                        for cid in client.held:
                            await client.fill(cid)

    def not_delivered_live(self, client_ids: list[str]) -> list[str]:
        """Messages the other side got only by filling a gap (its socket's groups were lost)."""
        rows = self.stack.sql(
            "SELECT client_id, conversation_id, seq, sender FROM conversations_message WHERE client_id = ANY(%s)",
            [client_ids],
        )
        by_conversation = {c.cid: c for c in self.customers}
        missed = []
        for client_id, cid, seq, sender in rows:
            customer = by_conversation[cid]
            other = self.agents[customer.conversation["agent_id"]] if sender == "customer" else customer
            if (cid, seq) not in other.live:
                missed.append(f"{sender} message {client_id} (seq {seq} of {cid}) not live to the {other.role}")
        return missed[:10]

    def last_seqs(self) -> dict[int, int]:
        ids = [c.cid for c in self.customers]
        return dict(self.stack.sql("SELECT id, last_seq FROM conversations_conversation WHERE id = ANY(%s)", [ids]))

    def missing(self) -> list[str]:
        gaps = []
        for cid, last in self.last_seqs().items():
            expected = set(range(1, last + 1))
            customer = next(c for c in self.customers if c.cid == cid)
            agent = self.agents[customer.conversation["agent_id"]]
            for client in (customer, agent):
                lacking = expected - client.held.get(cid, set())
                if lacking:
                    gaps.append(f"{client.role} of {cid} lacks seqs {sorted(lacking)[:10]}")
        return gaps

    async def close(self) -> None:
        for client in self.clients:
            await client.stop()

    def verdict(self) -> dict:
        """What went wrong, as lists (all empty: nothing lost, nothing twice)."""
        stored = self.stack.sql(
            "SELECT client_id, count(*) FROM conversations_message WHERE client_id = ANY(%s) GROUP BY client_id",
            [self.sent],
        )
        counts = dict(stored)
        return {
            "not stored": [c for c in self.sent if c not in counts][:10],
            "stored twice": [c for c, n in counts.items() if n != 1][:10],
            "not acknowledged": [c for client in self.clients for c in client.pending][:10],
            "missing seqs": self.missing()[:10],
            "duplicated on a socket": self.ledger.duplicated[:10],
            "unexpected error frames": self.ledger.bad_errors[:10],
            "agents over capacity": over_capacity(self.stack),
        }


def over_capacity(stack) -> list[tuple]:
    return stack.sql(
        """SELECT a.id, a.capacity, sum(w.capacity_units) FROM agents_agent a
           JOIN conversations_conversation c ON c.agent_id = a.id AND c.status = 'active'
           JOIN workstreams_workstream w ON w.id = c.workstream_id
           GROUP BY a.id, a.capacity HAVING sum(w.capacity_units) > a.capacity"""
    )
