"""One number for the WebSocket frame limit (omnichannel/limits.py): the consumers read it,
and every place that starts uvicorn for real passes the server's limit just above it, and
leaves the client's address to the application (``--no-proxy-headers``)."""

from __future__ import annotations

import re
from pathlib import Path

from bench.run import omni_server_command
from conversations import consumers
from omnichannel import limits
from omnichannel.devrun import web_command

BASE_DIR = Path(__file__).resolve().parent.parent
SERVER_LIMIT = ["--ws-max-size", str(limits.WS_MAX_SIZE)]
SERVER_PROTOCOL = ["--ws", "omnichannel.realtime.wsprotocol:WebSocketProtocol"]
STOCK_PROTOCOL = ["--ws", "websockets-sansio"]  # uvicorn's own, which ours subclasses
# uvicorn would otherwise take the client's address from X-Forwarded-For of its own list of
# trusted hosts (127.0.0.1 by default), whatever TRUSTED_PROXIES says (omnichannel/addresses.py).
NO_PROXY_HEADERS = ["--no-proxy-headers"]


def has_server_limit(command: list[str], protocol: list[str] = SERVER_PROTOCOL) -> bool:
    """The frame limit, the WebSocket protocol that keeps less per socket (or ``protocol``), and
    the client's address left to the application."""
    options = (SERVER_LIMIT, protocol, NO_PROXY_HEADERS)
    return all(any(command[i : i + len(option)] == option for i in range(len(command))) for option in options)


def test_the_servers_limit_is_a_little_above_the_consumers():
    assert consumers.MAX_FRAME is limits.MAX_FRAME
    assert limits.MAX_FRAME < limits.WS_MAX_SIZE <= 2 * limits.MAX_FRAME


def test_make_run_and_the_benchmark_start_uvicorn_with_the_limit(monkeypatch):
    monkeypatch.delenv("OMNICHANNEL_STOCK_REALTIME", raising=False)
    assert has_server_limit(web_command("127.0.0.1", 8000))
    assert has_server_limit(omni_server_command(8101))


def test_on_the_stock_stack_they_start_uvicorns_own_protocol_with_the_limit(monkeypatch):
    monkeypatch.setenv("OMNICHANNEL_STOCK_REALTIME", "1")
    assert has_server_limit(web_command("127.0.0.1", 8000), STOCK_PROTOCOL)
    assert has_server_limit(omni_server_command(8101), STOCK_PROTOCOL)
    assert limits.ws_protocol(stock=True) == "websockets-sansio"


def test_every_uvicorn_command_in_the_docs_passes_the_limit():
    commands = [
        (path.name, line)
        for path in [BASE_DIR / "README.md", *sorted((BASE_DIR / "docs").glob("*.md"))]
        for line in path.read_text().splitlines()
        if re.match(r"\s*(\S*/)?uvicorn omnichannel\.asgi", line)
    ]
    assert commands, "README's production command was not found"
    assert [(name, line) for name, line in commands if not has_server_limit(line.split())] == []
