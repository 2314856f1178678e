"""Origins match exactly: scheme, host and port (omnichannel/origins.py), on the agent socket
(refused at the handshake) and on the widget socket (``origin_not_allowed``, closed 4403).
The server here is ``testserver`` over ``ws``: its origin is ``http://testserver``."""

from __future__ import annotations

import pytest

from conversations.consumers import CLOSE_FORBIDDEN
from omnichannel.origins import normalize
from tests.realtime.conftest import customer_token

pytestmark = pytest.mark.django_db(transaction=True)

PROXY = ("10.0.0.2", 50000)
NOT_THIS_SERVER = [
    "http://testserver:8080",  # another port (the probe's)
    "https://testserver",  # another scheme: the page was not served over https
    "ws://testserver",
    "http://testserver.evil.example",
    "null",
    "http://testserver/path",
]


async def agent_socket_opens(socket, origin, **scope) -> bool:
    s = socket("/ws/agent/", origin=origin, **scope)
    return await s.connect()


async def widget_refuses(socket, widget, origin, **scope) -> bool:
    """Whether the widget socket answers ``origin_not_allowed`` and closes 4403 (else a customer's
    auth frame gets ``ready``)."""
    s = socket(f"/ws/widget/{widget.widget_key}/", origin=origin, **scope)
    assert await s.connect()
    await s.send({"type": "auth", "token": customer_token(widget.authentication_setting)})
    frame = await s.next()
    if frame["type"] == "ready":
        return False
    assert frame == {"type": "error", "code": "origin_not_allowed", "detail": frame["detail"]}
    assert await s.closed() == CLOSE_FORBIDDEN
    return True


@pytest.mark.parametrize("origin", NOT_THIS_SERVER)
async def test_the_agent_socket_refuses_any_other_scheme_or_port_of_this_host(socket, alice, origin):
    assert not await agent_socket_opens(socket, origin)


@pytest.mark.parametrize("origin", NOT_THIS_SERVER)
async def test_the_widget_socket_refuses_any_other_scheme_or_port_of_this_host(socket, persistent, origin):
    assert await widget_refuses(socket, persistent, origin)


@pytest.mark.parametrize("origin", ["http://testserver", "http://testserver:80", "HTTP://TestServer"])
async def test_this_servers_own_origin_opens_both_sockets(socket, alice, persistent, origin):
    assert await agent_socket_opens(socket, origin)
    assert not await widget_refuses(socket, persistent, origin)


async def test_over_wss_the_servers_origin_is_https(socket, alice, persistent):
    assert await agent_socket_opens(socket, "https://testserver", scheme="wss")
    assert not await agent_socket_opens(socket, "http://testserver", scheme="wss")
    assert await widget_refuses(socket, persistent, "http://testserver", scheme="wss")


async def test_the_port_in_the_host_header_is_part_of_the_servers_origin(socket, alice):
    assert await agent_socket_opens(socket, "http://testserver:8000", host="testserver:8000")
    assert not await agent_socket_opens(socket, "http://testserver", host="testserver:8000")


async def test_a_host_that_is_not_an_allowed_host_is_not_this_server(socket, alice):
    """DNS rebinding: a page of evil.example whose name now points here sends Host evil.example."""
    assert not await agent_socket_opens(socket, "http://evil.example", host="evil.example")


async def test_csrf_trusted_origins_are_this_servers_exactly(socket, alice, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com", "https://*.example.org"]
    assert await agent_socket_opens(socket, "https://chat.example.com")
    for origin in ("http://chat.example.com", "https://chat.example.com:8443", "https://www.example.org"):
        assert not await agent_socket_opens(socket, origin), origin


async def test_behind_a_trusted_tls_proxy_its_forwarded_proto_makes_the_origin_https(socket, alice, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    https = [(b"x-forwarded-proto", b"https")]
    assert await agent_socket_opens(socket, "https://testserver", client=PROXY, headers=https)
    assert not await agent_socket_opens(socket, "http://testserver", client=PROXY, headers=https)
    # The same header from a client that is no trusted proxy says nothing.
    assert not await agent_socket_opens(socket, "https://testserver", client=("198.51.100.7", 1), headers=https)
    assert await agent_socket_opens(socket, "http://testserver", client=("198.51.100.7", 1), headers=https)


async def test_a_widgets_allowed_origin_matches_by_scheme_host_and_port(socket, persistent):
    # persistent's allowed origin is https://shop.example.com (tests/factories.py)
    assert not await widget_refuses(socket, persistent, "https://shop.example.com")
    assert not await widget_refuses(socket, persistent, "https://shop.example.com:443")
    for origin in ("http://shop.example.com", "https://shop.example.com:8443", "https://example.com"):
        assert await widget_refuses(socket, persistent, origin), origin


@pytest.mark.parametrize(
    ("origin", "normal"),
    [
        ("https://Chat.Example.com", "https://chat.example.com"),
        ("https://chat.example.com:443", "https://chat.example.com"),
        ("http://chat.example.com:8080", "http://chat.example.com:8080"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("https://chat.example.com/", None),
        ("https://user@chat.example.com", None),
        ("https://chat.example.com:99999", None),
        ("https://*.example.com", None),
        ("file://", None),
        ("null", None),
    ],
)
def test_origins_are_compared_in_one_normal_form(origin, normal):
    assert normalize(origin) == normal
