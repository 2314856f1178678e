"""The floor: the least a server must do for the same wire traffic, with no Django.

Plain asyncio ``websockets`` + a psycopg async pool + Redis. Per ``message.send``: one
transaction that bumps the conversation's ``last_seq`` and inserts the message, the echo to
the sender, then one Redis PUBLISH that every floor process relays to its local sockets of
that conversation (the agent's, or the customer's). No authentication beyond naming who you
are (``c:<conversation id>`` or ``a:<agent id>``), no validation beyond JSON, no rate limit.

It also answers ``GET /history/<conversation id>?before_seq=N&limit=N`` over plain HTTP/1.1
keep-alive on ``--http-port`` (the history figure).

    python -m bench.floor.server --port 8101 --http-port 8201 --dsn ... --redis ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import psycopg
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool
from websockets.asyncio.server import serve

CHANNEL = "floor:messages"

SCHEMA = """
CREATE TABLE IF NOT EXISTS floor_conversation (
    id bigint PRIMARY KEY,
    agent_id bigint,
    status text NOT NULL DEFAULT 'active',
    queued_at timestamptz,
    last_seq integer NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS floor_message (
    id bigserial PRIMARY KEY,
    conversation_id bigint NOT NULL REFERENCES floor_conversation(id),
    seq integer NOT NULL,
    sender text NOT NULL,
    client_id text,
    body text NOT NULL,
    created_at timestamptz NOT NULL,
    UNIQUE (conversation_id, seq)
);
CREATE TABLE IF NOT EXISTS floor_agent (
    id bigint PRIMARY KEY,
    capacity integer NOT NULL,
    used integer NOT NULL DEFAULT 0,
    available boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS floor_conversation_queue ON floor_conversation (status, queued_at, id);
CREATE INDEX IF NOT EXISTS floor_conversation_agent ON floor_conversation (agent_id, status);
"""

SEND = """
WITH c AS (
    UPDATE floor_conversation SET last_seq = last_seq + 1 WHERE id = %(cid)s
    RETURNING id, last_seq, agent_id
)
INSERT INTO floor_message (conversation_id, seq, sender, client_id, body, created_at)
SELECT c.id, c.last_seq, %(sender)s, %(client_id)s, %(body)s, %(now)s FROM c
RETURNING seq, (SELECT agent_id FROM c)
"""


def dumps(frame) -> str:
    return json.dumps(frame, separators=(",", ":"))


class Floor:
    def __init__(self, dsn: str, redis_url: str, pool_size: int) -> None:
        self.pool = AsyncConnectionPool(dsn, min_size=pool_size, max_size=pool_size, open=False)
        self.redis = aioredis.Redis.from_url(redis_url)
        self.customers: dict[int, set] = {}  # conversation id -> customer sockets here
        self.agents: dict[int, set] = {}  # agent id -> agent sockets here

    async def start(self) -> None:
        await self.pool.open(wait=True)
        self.relay_task = asyncio.ensure_future(self.relay())

    async def relay(self) -> None:
        """Every process hears every message and forwards it to its own sockets."""
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(CHANNEL)
        async for item in pubsub.listen():
            if item["type"] != "message":
                continue
            event = json.loads(item["data"])
            text = dumps({"type": "message", "message": event["message"]})
            if event["to"] == "agent":
                targets = self.agents.get(event["agent_id"], ())
            else:
                targets = self.customers.get(event["message"]["conversation_id"], ())
            for ws in list(targets):
                with contextlib.suppress(Exception):  # a socket closing meanwhile
                    await ws.send(text)

    async def handler(self, ws) -> None:
        registered: tuple[dict, int] | None = None
        try:
            async for text in ws:
                frame = json.loads(text)
                kind = frame.get("type")
                if kind == "auth":
                    who, _, ident = str(frame.get("token", "")).partition(":")
                    table = self.customers if who == "c" else self.agents
                    registered = (table, int(ident))
                    table.setdefault(int(ident), set()).add(ws)
                    await ws.send(dumps({"type": "ready"}))
                elif kind == "message.send" and registered is not None:
                    table, ident = registered
                    customer = table is self.customers
                    cid = ident if customer else int(frame["conversation_id"])
                    await self.send(ws, cid, "customer" if customer else "agent", frame)
        finally:
            if registered is not None:
                table, ident = registered
                sockets = table.get(ident)
                if sockets is not None:
                    sockets.discard(ws)
                    if not sockets:
                        del table[ident]

    async def send(self, ws, cid: int, sender: str, frame) -> None:
        now = datetime.now(UTC)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                SEND,
                {"cid": cid, "sender": sender, "client_id": frame.get("client_id"), "body": frame["body"], "now": now},
            )
            seq, agent_id = await cur.fetchone()
        message = {
            "conversation_id": cid,
            "seq": seq,
            "client_id": frame.get("client_id"),
            "sender": sender,
            "body": frame["body"],
            "created_at": now.isoformat(),
        }
        await ws.send(dumps({"type": "message", "message": message}))  # the echo (acknowledgement)
        to = "agent" if sender == "customer" else "customer"
        await self.redis.publish(CHANNEL, dumps({"to": to, "agent_id": agent_id, "message": message}))

    # --- history over HTTP/1.1 keep-alive -----------------------------------------------------------

    async def http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1].decode()
                parts = urlsplit(target)
                query = parse_qs(parts.query)
                cid = int(parts.path.rstrip("/").rsplit("/", 1)[1])
                limit = int(query.get("limit", ["50"])[0])
                before = query.get("before_seq")
                sql = "SELECT seq, sender, client_id, body, created_at FROM floor_message WHERE conversation_id = %s"
                args: list = [cid]
                if before:
                    sql += " AND seq < %s"
                    args.append(int(before[0]))
                sql += " ORDER BY seq DESC LIMIT %s"
                args.append(limit + 1)
                async with self.pool.connection() as conn:
                    rows = await (await conn.execute(sql, args)).fetchall()
                page = [
                    {
                        "conversation_id": cid,
                        "seq": r[0],
                        "sender": r[1],
                        "client_id": r[2],
                        "body": r[3],
                        "created_at": r[4].isoformat(),
                    }
                    for r in reversed(rows[:limit])
                ]
                body = dumps({"messages": page, "has_more": len(rows) > limit}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def init_schema(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)


async def main(args) -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    floor = Floor(args.dsn, args.redis, args.pool_size)
    await floor.start()
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    http = await asyncio.start_server(floor.http, args.host, args.http_port, backlog=2048)
    async with serve(floor.handler, args.host, args.port, ping_interval=args.ping_interval, backlog=4096):
        print(f"floor {os.getpid()} listening on {args.port} (http {args.http_port})", flush=True)
        await stop
    http.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--pool-size", type=int, default=8)
    parser.add_argument("--ping-interval", type=float, default=20)
    parser.add_argument("--init-schema", action="store_true", help="create the tables and exit")
    args = parser.parse_args()
    if args.init_schema:
        init_schema(args.dsn)
    else:
        import asyncio as _asyncio

        _asyncio.run(main(args))
