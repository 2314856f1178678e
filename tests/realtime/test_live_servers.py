"""Real server processes (uvicorn), the Redis channel layer, and a client nobody wrote for this
project (the `websockets` library): two customers and two agents at once, with the customers on
one server process and the agents on another. Needs PostgreSQL (the processes share the
database), so it runs in CI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import websockets
from django.conf import settings
from django.db import connection

from omnichannel import ratelimit
from omnichannel.devrun import web_command
from tests.factories import api_key
from tests.realtime.conftest import customer_token
from tests.servers import free_port

BASE_DIR = Path(__file__).resolve().parent.parent.parent

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def database_url() -> str:
    db = connection.settings_dict
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@contextlib.contextmanager
def live_servers(count: int, tmp_path, **extra_env: str):
    """``count`` server processes on free ports, each started with the command ``make run``
    uses (omnichannel.devrun.web_command: uvicorn with the WebSocket limits of
    omnichannel.limits), on this test's database and Redis."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "1",
        "OMNICHANNEL_VAR_DIR": str(tmp_path),
        **extra_env,
    }
    ports = [free_port() for _ in range(count)]
    processes = [subprocess.Popen(web_command("127.0.0.1", port), env=env, cwd=BASE_DIR) for port in ports]
    try:
        for port in ports:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                    break
                except OSError:
                    assert time.monotonic() < deadline, "server did not start"
                    time.sleep(0.2)
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


@pytest.fixture
def servers(tmp_path):
    with live_servers(2, tmp_path) as ports:
        yield ports


async def frames_until(ws, predicate, timeout=10):
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if predicate(frame):
                return frame


async def customer_session(port, widget, sub):
    uri = f"ws://127.0.0.1:{port}/ws/widget/{widget.widget_key}/"
    async with websockets.connect(uri, origin="https://shop.example.com") as ws:
        await ws.send(json.dumps({"type": "auth", "token": customer_token(widget.authentication_setting, sub=sub)}))
        assert json.loads(await ws.recv())["type"] == "ready"
        await ws.send(json.dumps({"type": "message.send", "client_id": f"{sub}-1", "body": f"Hello from {sub}"}))
        ack = await frames_until(ws, lambda f: f["type"] == "message" and f["message"]["client_id"] == f"{sub}-1")
        reply = await frames_until(ws, lambda f: f["type"] == "message" and f["message"]["sender"] == "agent")
        return ack["message"], reply["message"]


async def agent_session(port, key, name, expected):
    uri = f"ws://127.0.0.1:{port}/ws/agent/"
    async with websockets.connect(uri, origin=f"http://127.0.0.1:{port}") as ws:
        await ws.send(json.dumps({"type": "auth", "token": key}))
        assert json.loads(await ws.recv())["type"] == "ready"
        answered = []
        while len(answered) < expected:
            note = await frames_until(ws, lambda f: f["type"] == "notification" and f["kind"] == "assigned", 20)
            conversation_id = note["conversation_id"]
            await ws.send(
                json.dumps(
                    {
                        "type": "message.send",
                        "conversation_id": conversation_id,
                        "client_id": f"{name}-{conversation_id}",
                        "body": f"{name} here",
                    }
                )
            )
            await frames_until(ws, lambda f: f["type"] == "message" and f["message"]["client_id"].startswith(name))
            answered.append(conversation_id)
        await asyncio.sleep(0.5)  # let the customers read the replies
        return answered


def test_customers_on_one_server_and_agents_on_another_still_talk(servers, persistent, alice, bob):
    customer_port, agent_port = servers
    keys = [api_key(agent.user) for agent in (alice, bob)]

    async def scenario():
        agents = [
            asyncio.create_task(agent_session(agent_port, key, name, expected=1))
            for key, name in zip(keys, ("alice", "bob"), strict=True)
        ]
        await asyncio.sleep(0.5)  # agents connected before customers write
        customers = await asyncio.gather(*(customer_session(customer_port, persistent, sub) for sub in ("c1", "c2")))
        answered = await asyncio.gather(*agents)
        return customers, answered

    customers, answered = asyncio.run(scenario())
    assert sorted(pk for pks in answered for pk in pks) == sorted({ack["conversation_id"] for ack, _ in customers})
    for ack, reply in customers:
        assert reply["conversation_id"] == ack["conversation_id"]
        assert reply["body"] in ("alice here", "bob here")


def test_the_socket_cap_counts_the_sockets_of_both_server_processes(tmp_path, persistent):
    """Three sockets per address: two on one process and one on the other fill it; the next, on
    either process, is closed with 4429. (A closed socket giving its place back: test_socket_cap.py.)"""
    redis = ratelimit._client(settings.REDIS_URL)
    for key in redis.scan_iter("omnichannel:sockets:*"):
        redis.delete(key)

    async def scenario(first: int, second: int) -> None:
        def url(port: int) -> str:
            return f"ws://127.0.0.1:{port}/ws/widget/{persistent.widget_key}/"

        async def refused(port: int) -> None:
            async with websockets.connect(url(port), origin="https://shop.example.com") as ws:
                assert json.loads(await ws.recv())["code"] == "rate_limited"
                with pytest.raises(websockets.ConnectionClosed):
                    await ws.recv()
                assert ws.close_code == 4429

        held = []
        try:
            for port in (first, first, second):
                held.append(ws := await websockets.connect(url(port), origin="https://shop.example.com"))
                await ws.send(json.dumps({"type": "auth", "token": customer_token(persistent.authentication_setting)}))
                assert json.loads(await ws.recv())["type"] == "ready"
            await refused(first)
            await refused(second)
        finally:
            for ws in held:
                await ws.close()

    with live_servers(2, tmp_path, MAX_SOCKETS_PER_ADDRESS="3") as (first, second):
        asyncio.run(scenario(first, second))
