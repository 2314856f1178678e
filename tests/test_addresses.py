"""The client's address of every per-address limit (omnichannel/addresses.py): the TCP peer's;
``X-Forwarded-For`` only from ``TRUSTED_PROXIES``, read from the right. (The sign-in lockout:
test_login_throttling.py; the socket cap: realtime/test_socket_cap.py.)"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import RequestFactory
from rest_framework.test import APIClient

from omnichannel.addresses import client_address, from_trusted_proxy, parse_trusted_proxies
from omnichannel.api import WidgetThrottle
from tests.cast import (  # noqa: F401 - fixtures
    alice,
    bob,
    broadcasts,
    commit,
    customer,
    eager_celery,
    live,
    other_customer,
    persistent,
    queue,
    visitor,
)

PROXY = "10.0.0.2"
PROXIES = ["10.0.0.0/8"]

CASES = [
    # peer, X-Forwarded-For, TRUSTED_PROXIES, the address
    ("198.51.100.7", "203.0.113.9", [], "198.51.100.7"),
    ("198.51.100.7", "203.0.113.9", PROXIES, "198.51.100.7"),  # the peer is not a proxy
    (PROXY, "203.0.113.9", PROXIES, "203.0.113.9"),
    (PROXY, "198.51.100.1, 203.0.113.9", PROXIES, "203.0.113.9"),  # the client wrote the left part
    (PROXY, "203.0.113.9, 10.0.0.7", PROXIES, "203.0.113.9"),  # two proxies
    (PROXY, "10.0.0.9", PROXIES, "10.0.0.9"),  # a client inside the trusted network
    (PROXY, "203.0.113.9, not-an-address, 10.0.0.7", PROXIES, "10.0.0.7"),
    (PROXY, "", PROXIES, PROXY),
    (PROXY, "203.0.113.9:4711", PROXIES, "203.0.113.9"),
    (PROXY, "[2001:db8::1]:4711", PROXIES, "2001:db8::1"),
    ("::ffff:198.51.100.7", "", [], "198.51.100.7"),
    ("2001:db8::7", "203.0.113.9", ["2001:db8::/64"], "203.0.113.9"),
    ("127.0.0.1", "203.0.113.9", ["127.0.0.1"], "203.0.113.9"),
    (None, "203.0.113.9", PROXIES, None),  # a Unix socket: no peer address
]


@pytest.mark.parametrize(("peer", "forwarded", "trusted", "expected"), CASES)
def test_a_request_and_a_socket_scope_give_the_same_address(settings, peer, forwarded, trusted, expected):
    settings.TRUSTED_PROXIES = trusted
    meta = {"REMOTE_ADDR": peer or ""}
    if forwarded:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    request = RequestFactory().get("/", **meta)
    scope = {
        "type": "websocket",
        "client": (peer, 50000) if peer else None,
        "headers": [(b"x-forwarded-for", forwarded.encode())] if forwarded else [],
    }
    assert client_address(request) == expected
    assert client_address(scope) == expected


def test_several_forwarded_for_headers_are_read_as_one_list(settings):
    settings.TRUSTED_PROXIES = PROXIES
    headers = [(b"x-forwarded-for", b"198.51.100.1"), (b"x-forwarded-for", b"203.0.113.9")]
    assert client_address({"type": "websocket", "client": (PROXY, 1), "headers": headers}) == "203.0.113.9"


def test_only_a_trusted_peer_is_a_proxy(settings):
    scope = {"type": "websocket", "client": (PROXY, 1), "headers": []}
    assert not from_trusted_proxy(scope)
    settings.TRUSTED_PROXIES = PROXIES
    assert from_trusted_proxy(scope)
    assert not from_trusted_proxy({**scope, "client": ("198.51.100.7", 1)})


@pytest.mark.parametrize("entry", ["*", "proxy.internal", "10.0.0.1/8", ""])
def test_trusted_proxies_must_be_addresses_or_networks(entry):
    with pytest.raises(ValueError, match="is not an IP address or network"):
        parse_trusted_proxies(["127.0.0.1", entry])
    assert len(parse_trusted_proxies(["127.0.0.1", "10.0.0.0/8", "::1", "2001:db8::/32"])) == 4


@pytest.fixture
def three_a_minute(monkeypatch):
    cache.clear()
    monkeypatch.setattr(WidgetThrottle, "THROTTLE_RATES", {"widget": "3/min"})
    yield
    cache.clear()


def visitor_token(client, live, **meta):
    return client.post(f"/api/v1/widget/{live.widget_key}/visitor/", **meta).status_code


@pytest.mark.django_db
def test_a_client_that_rotates_x_forwarded_for_gets_no_new_visitor_tokens(live, three_a_minute):
    """The probe got 300 visitor tokens past the limit by changing the header on every call:
    DRF's throttle counted X-Forwarded-For, from anyone."""
    client = APIClient(REMOTE_ADDR="198.51.100.7")
    statuses = [visitor_token(client, live, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}") for n in range(6)]
    assert statuses == [201, 201, 201, 429, 429, 429]
    assert visitor_token(APIClient(REMOTE_ADDR="198.51.100.8"), live) == 201  # another address


@pytest.mark.django_db
def test_behind_a_trusted_proxy_each_client_it_forwards_has_its_own_budget(live, three_a_minute, settings):
    settings.TRUSTED_PROXIES = PROXIES
    client = APIClient(REMOTE_ADDR=PROXY)
    assert [visitor_token(client, live, HTTP_X_FORWARDED_FOR="203.0.113.9") for _ in range(4)] == [201] * 3 + [429]
    # The same client writing another address in front of the one the proxy appended: still itself.
    assert visitor_token(client, live, HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.9") == 429
    assert visitor_token(client, live, HTTP_X_FORWARDED_FOR="203.0.113.10") == 201
