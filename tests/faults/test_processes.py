"""Faults of the processes and services under a running chat: each test breaks one thing while
customers and agents exchange messages, then checks that every seq reached both sides exactly
once, every message was stored once and acknowledged, and no agent is over capacity
(tests/faults/chat.py). The processes are the production setup's (tests/faults/stack.py)."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from websockets.exceptions import ConnectionClosed

from tests.faults.chat import Chat, Customer, over_capacity

pytestmark = pytest.mark.timeout(300)

CUSTOMERS, AGENTS, RATE = 40, 4, 40


def assert_nothing_lost(chat: Chat) -> None:
    verdict = chat.verdict()
    assert verdict == {key: [] for key in verdict}, (verdict, chat.stack.logs())


async def test_kill_9_of_a_web_worker_mid_stream_loses_nothing(stack):
    """Broke: SIGKILL to one of two uvicorn workers while half the sockets were on it.
    Verified: its clients reconnect to the survivor and then to the restarted worker, resume
    from after_seq (customers) or REST (agents); every seq on both sides exactly once, every
    message stored once, nothing unacknowledged."""
    ports = [stack.start_web(), stack.start_web()]
    chat = Chat(stack, stack.fixture("latency", "--customers", str(CUSTOMERS), "--agents", str(AGENTS)), ports)
    await chat.connect()
    try:
        await chat.talk(3, RATE)
        stack.kill_web(ports[0])
        await chat.talk(3, RATE)
        await asyncio.to_thread(stack.start_web, ports[0])
        await chat.talk(3, RATE)
        await chat.settle()
    finally:
        await chat.close()
    assert chat.ledger.reconnects >= CUSTOMERS // 2, "the kill did not hit the sockets it was meant to"
    assert_nothing_lost(chat)


async def test_redis_restarted_mid_stream_loses_nothing_and_the_sweep_assigns_what_queued_meanwhile(stack):
    """Broke: SIGKILL to Redis (channel layer, rate limits, Celery broker; it keeps nothing on
    disk, so group memberships and queued tasks vanish), restarted 2 s later on the same port,
    while customers and agents talked and five conversations queued.
    Verified: sends during the outage get `unavailable` and go again; afterwards the sockets'
    groups are joined again (messages arrive live, not only by gap filling); every seq on both
    sides exactly once, every message stored once; the queued conversations are assigned by the
    periodic sweep, nobody over capacity; the worker and its beat survived."""
    stack.env["SWEEP_INTERVAL"] = "1"
    ports = [stack.start_web(), stack.start_web()]
    stack.start_worker("w1", beat=True)
    chat = Chat(stack, stack.fixture("latency", "--customers", str(CUSTOMERS), "--agents", str(AGENTS)), ports)
    await chat.connect()
    try:
        await chat.talk(2, RATE)
        stack.redis.crash()
        queued = await asyncio.to_thread(
            stack.fixture, "assignment", "--conversations", "5", "--agents", "1", "--keep-ongoing"
        )
        # An agent becomes available during the outage: the drain it asks for cannot be enqueued.
        status = await asyncio.to_thread(
            stack.patch_me, ports[0], queued["agents"][0]["token"], {"presence": "available"}
        )
        await chat.talk(2, RATE)
        await asyncio.to_thread(stack.redis.start)
        await chat.talk(4, RATE)
        live_from = len(chat.sent)
        await chat.talk(2, RATE)
        await chat.settle()
        await asyncio.to_thread(stack.wait_until_active, queued["conversation_ids"], 60)
    finally:
        await chat.close()
    assert status == 200
    assert chat.ledger.retryable_errors > 0, "no send met the outage"
    assert chat.not_delivered_live(chat.sent[live_from:]) == []
    assert_nothing_lost(chat)
    assert all(process.poll() is None for process in stack.workers.values()), stack.logs()


async def test_postgresql_restarted_mid_stream_answers_unavailable_then_resumes(stack):
    """Broke: an immediate PostgreSQL shutdown (every backend killed, as in a crash) for 2 s,
    then a start with crash recovery, while customers and agents talked.
    Verified: sends during the outage get an `unavailable` error frame (no hang, no dropped
    socket: nobody reconnects); afterwards sends succeed on the same sockets; every seq on both
    sides exactly once, every message stored once."""
    ports = [stack.start_web(), stack.start_web()]
    chat = Chat(stack, stack.fixture("latency", "--customers", str(CUSTOMERS), "--agents", str(AGENTS)), ports)
    await chat.connect()
    try:
        await chat.talk(2, RATE)
        await asyncio.to_thread(stack.postgres.crash)
        await chat.talk(2, RATE)
        await asyncio.to_thread(stack.postgres.start)
        await chat.talk(4, RATE)
        await chat.settle()
    finally:
        await chat.close()
    assert chat.ledger.retryable_errors > 0, "no send met the outage"
    assert chat.ledger.reconnects == 0 and chat.ledger.closed == [], chat.ledger.closed
    assert_nothing_lost(chat)


def _post_messages(port: int, token: str, conversation_id: int, bodies: list[str]) -> list[int]:
    """The agent's burst over REST, eight at a time (the socket's flood limit is not the point)."""
    import concurrent.futures
    import json
    import urllib.request

    def post(body: str) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/agent/conversations/{conversation_id}/messages/",
            data=json.dumps({"body": body, "client_id": uuid.uuid4().hex}).encode(),
            method="POST",
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(post, bodies))


async def test_a_client_that_stops_reading_is_let_go_and_catches_up_while_others_carry_on(stack):
    """Broke: a customer's second socket stops reading (a 4 KiB receive buffer, nothing read)
    while the agent bursts 500 messages of 4,000 characters into that conversation (12 MB of
    frames: "ø" is six bytes in JSON, more than the kernel's 4 MB send buffer holds).
    Verified: once a send blocks, the server lets the slow socket go after WS_SEND_TIMEOUT (its
    connection is counted off, its frames stop piling up: the process's memory stays bounded);
    the other customers' messages keep arriving live meanwhile; and the slow client, reading
    again and reconnecting from its after_seq, catches up on every message."""
    import socket as socketlib

    import psutil

    from bench.load import Target, open_socket

    port = stack.start_web(WS_SEND_TIMEOUT="2")
    fixture = stack.fixture("latency", "--customers", "4", "--agents", "1")
    chat = Chat(stack, fixture, [port])
    await chat.connect()
    slow_conv = fixture["conversations"][0]
    raw = socketlib.socket()
    raw.setsockopt(socketlib.SOL_SOCKET, socketlib.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", port))
    url, extra, auth = Target("omni", [port]).customer(port, slow_conv, slow_conv["token"])
    start_seq = chat.start_seqs[slow_conv["id"]]
    slow = await open_socket(url, {**extra, "sock": raw}, auth, after_seq=start_seq, max_queue=1)
    (customer_id,) = stack.sql("SELECT customer_id FROM conversations_conversation WHERE id = %s", [slow_conv["id"]])[0]
    count = "SELECT connection_count FROM conversations_customer WHERE id = %s"
    ((connections,),) = stack.sql(count, [customer_id])  # the slow socket and the Chat's customer, at least
    web = psutil.Process(stack.web[port].pid)
    rss_before = web.memory_info().rss
    try:
        burst = asyncio.ensure_future(
            asyncio.to_thread(
                _post_messages,
                port,
                fixture["agents"][0]["token"],
                slow_conv["id"],
                [f"{n:04d}" + "ø" * 3996 for n in range(500)],
            )
        )
        others_from = len(chat.sent)
        while not burst.done():
            await chat.talk(1, 10)
        assert set(await burst) == {201}
        await asyncio.to_thread(stack.wait_for_sql, count, [customer_id], [(connections - 1,)], 30)
        rss_growth = web.memory_info().rss - rss_before
        await chat.settle()
        # The slow client reads again: what was buffered, then the end; it resumes from after_seq.
        held = {start_seq}
        try:
            async for text in slow:
                frame = json.loads(text)
                if frame["type"] == "message":
                    held.add(frame["message"]["seq"])
        except ConnectionClosed:
            pass
        catch_up = Customer(slow_conv, [port], chat.ledger, {slow_conv["id"]: 0})
        catch_up.held[slow_conv["id"]] = set(range(1, start_seq + 1)) | held
        await catch_up.start()
        await catch_up.fill(slow_conv["id"])
        await catch_up.stop()
    finally:
        await chat.close()
    (last_seq,) = stack.sql("SELECT last_seq FROM conversations_conversation WHERE id = %s", [slow_conv["id"]])[0]
    assert catch_up.held[slow_conv["id"]] >= set(range(1, last_seq + 1))
    assert chat.not_delivered_live(chat.sent[others_from:]) == []
    assert rss_growth < 64 * 2**20, rss_growth
    assert_nothing_lost(chat)


async def test_a_celery_worker_killed_mid_drain_leaves_the_rest_to_the_sweep_and_assigns_nothing_twice(stack):
    """Broke: SIGKILL to the only Celery worker (and its pool) while it drained a queue of
    1,000 conversations that 20 agents had just become available for.
    Verified: part of the queue was assigned when it died; a new worker's periodic sweep
    assigns the rest; every conversation got exactly one agent and one "agent joined"
    message, and no agent is over capacity."""
    port = stack.start_web()
    stack.start_worker("w1")
    queued = await asyncio.to_thread(
        stack.fixture, "assignment", "--conversations", "1000", "--agents", "20", "--keep-ongoing"
    )
    ids = queued["conversation_ids"]
    active = "SELECT count(*) FROM conversations_conversation WHERE id = ANY(%s) AND status = 'active'"
    statuses = await asyncio.gather(
        *(asyncio.to_thread(stack.patch_me, port, a["token"], {"presence": "available"}) for a in queued["agents"])
    )
    assert set(statuses) == {200}
    await asyncio.to_thread(stack.wait_for, lambda: stack.sql(active, [ids])[0][0] > 0, "the first assignments", 60)
    stack.kill_worker("w1")
    ((at_kill,),) = stack.sql(active, [ids])
    stack.env["SWEEP_INTERVAL"] = "1"
    stack.start_worker("w2", beat=True)
    await asyncio.to_thread(stack.wait_until_active, ids, 120)
    assert 0 < at_kill < len(ids), f"the kill did not land mid-drain ({at_kill} of {len(ids)} assigned)"
    joined = stack.sql(
        """SELECT conversation_id, count(*) FROM conversations_message
           WHERE conversation_id = ANY(%s) AND kind = 'agent_joined' GROUP BY conversation_id""",
        [ids],
    )
    assert len(joined) == len(ids) and {n for _, n in joined} == {1}
    assert over_capacity(stack) == []
