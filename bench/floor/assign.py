"""The floor of the assignment figure: plain psycopg, no Django, no Celery.

``setup`` queues N open conversations and M unavailable agents with room for all of them;
``race`` is one of the two racing assigners: it connects, prints ``ready``, waits for a line
on stdin, then assigns until no open conversation is left, each assignment one transaction
(the oldest open conversation ``FOR UPDATE SKIP LOCKED``, the agent with the most free
capacity locked ``FOR UPDATE``: a ``used`` counter in its row, as a minimal server would keep
it, rechecked by PostgreSQL under the lock; two UPDATEs), followed
by a Redis PUBLISH telling the agent's socket.

    python -m bench.floor.assign setup --dsn ... --conversations 2000 --agents 100
    python -m bench.floor.assign race --dsn ... --redis ...
"""

from __future__ import annotations

import argparse
import json
import sys

import psycopg
import redis

FIRST_ID = 10_000_000  # floor conversation ids of this figure (the message figures use small ids)


PICK_AGENT = """SELECT id FROM floor_agent WHERE available AND used < capacity
    ORDER BY capacity - used DESC, id LIMIT 1 FOR UPDATE"""


def setup(dsn: str, conversations: int, agents: int) -> None:
    per_agent = -(-conversations // agents)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE floor_conversation SET status = 'closed' WHERE id >= %s", [FIRST_ID])
        conn.execute("DELETE FROM floor_message WHERE conversation_id >= %s", [FIRST_ID])
        conn.execute("DELETE FROM floor_conversation WHERE id >= %s", [FIRST_ID])
        conn.execute("DELETE FROM floor_agent")
        conn.execute(
            "INSERT INTO floor_agent (id, capacity, used, available) "
            "SELECT n, %s, 0, false FROM generate_series(1, %s) n",
            [per_agent, agents],
        )
        conn.execute(
            """INSERT INTO floor_conversation (id, agent_id, status, queued_at, last_seq)
            SELECT %s + n, NULL, 'open', now() - interval '5 minutes' + n * interval '1 millisecond', 1
            FROM generate_series(1, %s) n""",
            [FIRST_ID, conversations],
        )
        conn.execute("ANALYZE floor_conversation")


def race(dsn: str, redis_url: str) -> None:
    publisher = redis.Redis.from_url(redis_url)
    assigned = 0
    with psycopg.connect(dsn) as conn:
        print("ready", flush=True)
        sys.stdin.readline()
        while True:
            with conn.transaction():
                row = conn.execute(
                    """SELECT id FROM floor_conversation WHERE status = 'open'
                    ORDER BY queued_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"""
                ).fetchone()
                if row is None:
                    break
                # An agent the other racer is not holding; if it holds every candidate, wait for one.
                # Under the lock PostgreSQL checks "used < capacity" again on the latest row.
                agent = conn.execute(PICK_AGENT + " SKIP LOCKED").fetchone() or conn.execute(PICK_AGENT).fetchone()
                if agent is None:
                    break
                conn.execute("UPDATE floor_agent SET used = used + 1 WHERE id = %s", [agent[0]])
                conn.execute(
                    "UPDATE floor_conversation SET status = 'active', agent_id = %s WHERE id = %s", [agent[0], row[0]]
                )
            publisher.publish(
                "floor:notifications", json.dumps({"agent_id": agent[0], "conversation_id": row[0], "kind": "assigned"})
            )
            assigned += 1
    print(json.dumps({"assigned": assigned}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["setup", "race"])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/2")
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--agents", type=int, default=100)
    args = parser.parse_args()
    if args.what == "setup":
        setup(args.dsn, args.conversations, args.agents)
    else:
        race(args.dsn, args.redis)


if __name__ == "__main__":
    main()
