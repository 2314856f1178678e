"""Error codes that need a special situation: JWT attacks over the wire, throttling, and a
database that fails mid-request."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
import time_machine
from channels.db import database_sync_to_async as in_db
from django.core.cache import cache
from django.db import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from rest_framework.test import APIClient

from conversations import services
from tests.keys import ec_key, public_pem, rsa_key
from tests.realtime.conftest import Socket, customer_token

W = "/api/v1/widget/{}/conversation/"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(setting, **extra):
    now = int(time.time())
    return {"sub": "mallory", "iss": setting.issuer, "iat": now, "exp": now + 300, **extra}


def _attacks(setting):
    none = _b64(b'{"alg":"none","typ":"JWT"}') + "." + _b64(json.dumps(_claims(setting)).encode()) + "."
    signing_input = _b64(b'{"alg":"HS256","typ":"JWT"}') + "." + _b64(json.dumps(_claims(setting)).encode())
    hs = (
        signing_input
        + "."
        + _b64(hmac.new(public_pem(rsa_key()).encode(), signing_input.encode(), hashlib.sha256).digest())
    )
    header, _, signature = jwt.encode(_claims(setting), rsa_key(), algorithm="RS256").split(".")
    tampered = f"{header}.{_b64(json.dumps(_claims(setting, sub='admin')).encode())}.{signature}"
    valid = jwt.encode(_claims(setting), rsa_key(), algorithm="RS256")
    header_b64, payload_b64, signature_b64 = valid.split(".")
    attacker = rsa_key("attacker")
    attacker_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key()))

    def forged_header(header: dict) -> str:
        return _b64(json.dumps(header).encode()) + "." + payload_b64

    return {
        "alg-none-uppercase": forged_header({"alg": "NONE", "typ": "JWT"}) + ".",
        "alg-none-with-a-real-signature": forged_header({"alg": "none", "typ": "JWT"}) + "." + signature_b64,
        "alg-null": forged_header({"alg": None, "typ": "JWT"}) + "." + signature_b64,
        "rs512-with-the-site-key": jwt.encode(_claims(setting), rsa_key(), algorithm="RS512"),
        "ps256-with-the-site-key": jwt.encode(_claims(setting), rsa_key(), algorithm="PS256"),
        "es256-header-on-an-rsa-site": jwt.encode(_claims(setting), ec_key("attacker"), algorithm="ES256"),
        "embedded-jwk-of-the-attacker": jwt.encode(
            _claims(setting), attacker, algorithm="RS256", headers={"jwk": attacker_jwk}
        ),
        "jku-pointing-at-the-attacker": jwt.encode(
            _claims(setting), attacker, algorithm="RS256", headers={"jku": "https://evil.example/jwks.json"}
        ),
        "kid-path-traversal": jwt.encode(
            _claims(setting), rsa_key(), algorithm="RS256", headers={"kid": "../../../../dev/null"}
        ),
        "kid-sql-injection": jwt.encode(_claims(setting), rsa_key(), algorithm="RS256", headers={"kid": "' OR '1'='1"}),
        "signature-stripped": f"{header_b64}.{payload_b64}.",
        "five-parts-jwe-shape": f"{header_b64}.{payload_b64}.{signature_b64}.x.y",
        "exp-as-a-string": jwt.encode(_claims(setting, exp=str(int(time.time()) + 300)), rsa_key(), algorithm="RS256"),
        "no-exp": jwt.encode({k: v for k, v in _claims(setting).items() if k != "exp"}, rsa_key(), algorithm="RS256"),
        "no-iat": jwt.encode({k: v for k, v in _claims(setting).items() if k != "iat"}, rsa_key(), algorithm="RS256"),
        # Valid for a century, issued in 1970: longer than the setting's maximum lifetime (24 h).
        "exp-in-a-century-iat-0": jwt.encode(
            _claims(setting, iat=0, exp=int(time.time()) + 100 * 365 * 86400), rsa_key(), algorithm="RS256"
        ),
        # Signed by the site's own key, but longer than any real token: refused before parsing.
        "oversized-but-validly-signed": jwt.encode(_claims(setting, pad="x" * 9000), rsa_key(), algorithm="RS256"),
        "alg-none": none,
        "hs256-with-public-key": hs,
        "expired": jwt.encode(_claims(setting, exp=int(time.time()) - 600), rsa_key(), algorithm="RS256"),
        "not-yet-valid": jwt.encode(_claims(setting, nbf=int(time.time()) + 600), rsa_key(), algorithm="RS256"),
        "wrong-issuer": jwt.encode(_claims(setting, iss="https://evil.example"), rsa_key(), algorithm="RS256"),
        "unknown-kid": jwt.encode(_claims(setting), rsa_key(), algorithm="RS256", headers={"kid": "gone"}),
        "other-key": jwt.encode(_claims(setting), rsa_key("attacker"), algorithm="RS256"),
        "tampered": tampered,
        "oversized": "a" * 10_000,
    }


ATTACKS = [
    "alg-none",
    "hs256-with-public-key",
    "expired",
    "not-yet-valid",
    "wrong-issuer",
    "unknown-kid",
    "other-key",
    "tampered",
    "oversized",
    "alg-none-uppercase",
    "alg-none-with-a-real-signature",
    "alg-null",
    "rs512-with-the-site-key",
    "ps256-with-the-site-key",
    "es256-header-on-an-rsa-site",
    "embedded-jwk-of-the-attacker",
    "jku-pointing-at-the-attacker",
    "kid-path-traversal",
    "kid-sql-injection",
    "signature-stripped",
    "five-parts-jwe-shape",
    "exp-as-a-string",
    "no-exp",
    "no-iat",
    "exp-in-a-century-iat-0",
    "oversized-but-validly-signed",
]


@pytest.mark.django_db
@pytest.mark.parametrize("attack", ATTACKS)
def test_jwt_attacks_are_invalid_token_over_rest(persistent, attack):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer " + _attacks(persistent.authentication_setting)[attack])
    response = client.get(W.format(persistent.widget_key))
    assert response.status_code == 401 and response.json()["code"] == "invalid_token"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attack", ATTACKS)
async def test_jwt_attacks_close_the_socket_with_4401(persistent, attack):
    token = await in_db(lambda: _attacks(persistent.authentication_setting)[attack])()
    s = Socket(f"/ws/widget/{persistent.widget_key}/")
    assert await s.connect()
    await s.send({"type": "auth", "token": token})
    assert (await s.next())["code"] == "invalid_token"
    assert await s.closed() == 4401


@pytest.fixture
def audience(persistent):
    setting = persistent.authentication_setting
    setting.audience = "omnichannel"
    setting.save()
    return setting


@pytest.mark.django_db
@pytest.mark.parametrize(("aud", "status"), [("omnichannel", 200), ("someone-else", 401), (None, 401)])
def test_the_audience_must_be_the_settings_when_it_names_one_over_rest(persistent, audience, aud, status):
    claims = _claims(audience, **({"aud": aud} if aud else {}))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer " + jwt.encode(claims, rsa_key(), algorithm="RS256"))
    response = client.get(W.format(persistent.widget_key))
    assert response.status_code == status
    if status == 401:
        assert response.json()["code"] == "invalid_token"


@pytest.mark.django_db(transaction=True)
async def test_a_token_for_another_audience_closes_the_socket_with_4401(persistent):
    setting = await in_db(lambda: persistent.authentication_setting)()
    setting.audience = "omnichannel"
    await in_db(setting.save)()
    s = Socket(f"/ws/widget/{persistent.widget_key}/")
    assert await s.connect()
    await s.send({"type": "auth", "token": jwt.encode(_claims(setting, aud="someone-else"), rsa_key(), "RS256")})
    assert (await s.next())["code"] == "invalid_token"
    assert await s.closed() == 4401


@pytest.mark.django_db
def test_an_agents_api_token_is_not_a_customer_token(persistent, alice):
    from tests.factories import api_key

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer " + api_key(alice.user))
    response = client.get(W.format(persistent.widget_key))
    assert response.status_code == 401 and response.json()["code"] == "invalid_token"


@pytest.mark.django_db
def test_too_many_widget_requests_are_rate_limited(persistent, settings):
    cache.clear()
    client = APIClient()
    from omnichannel.api import WidgetThrottle

    limit = int(WidgetThrottle().get_rate().split("/")[0])
    statuses = [client.get(f"/api/v1/widget/{persistent.widget_key}/").status_code for _ in range(limit + 1)]
    assert statuses[:limit] == [200] * limit
    last = client.get(f"/api/v1/widget/{persistent.widget_key}/")
    assert last.status_code == 429 and last.json()["code"] == "rate_limited"
    cache.clear()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "failure",
    [OperationalError("connection refused"), RedisConnectionError("Error 111 connecting. Connection refused.")],
    ids=["database", "redis"],
)
def test_a_service_failure_is_503_unavailable_not_a_500(persistent, monkeypatch, failure):
    def down(**kwargs):
        raise failure

    monkeypatch.setattr(services, "customer_message_send", down)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer " + customer_token(persistent.authentication_setting))
    response = client.post(W.format(persistent.widget_key) + "messages/", {"body": "hi"}, format="json")
    assert response.status_code == 503 and response.json()["code"] == "unavailable"


@pytest.mark.django_db(transaction=True)
async def test_a_database_failure_is_an_unavailable_frame_and_the_socket_stays_open(persistent, monkeypatch):
    def down(**kwargs):
        raise OperationalError("connection refused")

    token = await in_db(customer_token)(persistent.authentication_setting)
    s = Socket(f"/ws/widget/{persistent.widget_key}/")
    assert await s.connect()
    await s.send({"type": "auth", "token": token})
    await s.until(lambda f: f["type"] == "ready")
    monkeypatch.setattr(services, "customer_message_send", down)
    await s.send({"type": "message.send", "client_id": "c1", "body": "hi"})
    error = await s.until(lambda f: f["type"] == "error")
    assert error == {"type": "error", "code": "unavailable", "detail": error["detail"], "client_id": "c1"}
    monkeypatch.undo()
    await s.send({"type": "message.send", "client_id": "c2", "body": "hi again"})
    await s.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "c2")
    await s.close()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v2/"),
        ("get", "/api/v1/agent/nothing-here/"),
        ("get", "/api/v1/widget/not a key/"),
        ("post", "/api/v1/widget/new%0Aline/conversation/end/"),
        ("post", "/api/v1/widget/demo/visitor"),  # no trailing slash: no redirect a POST cannot follow
        ("delete", "/api/v1/agent/conversations/x/"),
    ],
)
def test_an_unknown_api_path_is_a_json_not_found(method, path):
    client = APIClient(enforce_csrf_checks=True)
    response = getattr(client, method)(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_found"


def test_every_api_route_is_declared_before_the_api_catch_all():
    """A route under /api/ declared elsewhere (after the include) would never be reached."""
    from django.urls import URLResolver, get_resolver

    outside = [
        str(pattern.pattern)
        for pattern in get_resolver().url_patterns
        if str(pattern.pattern).startswith("api/") and not isinstance(pattern, URLResolver)
    ]
    assert not outside, f"declare these in omnichannel/api_urls.py, before the catch-all: {outside}"
    from omnichannel import api_urls

    assert api_urls.urlpatterns[-1].name == "api-not-found"


@pytest.fixture
def three_a_minute(monkeypatch):
    from omnichannel.api import AgentThrottle

    cache.clear()
    monkeypatch.setattr(AgentThrottle, "THROTTLE_RATES", {"agent": "3/min"})
    yield
    cache.clear()


@pytest.mark.django_db
def test_too_many_agent_requests_are_rate_limited(as_agent, alice, three_a_minute):
    client = as_agent(alice)
    assert [client.get("/api/v1/agent/me/").status_code for _ in range(3)] == [200] * 3
    refused = client.get("/api/v1/agent/me/")
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"


@pytest.mark.django_db
def test_a_refused_call_says_when_its_window_has_room_again(as_agent, alice, three_a_minute):
    client = as_agent(alice)
    with time_machine.travel(5_000_000.0, tick=False) as clock:
        for _ in range(3):
            client.get("/api/v1/agent/me/")
            clock.shift(10)
        refused = client.get("/api/v1/agent/me/")  # the first call leaves the window in 30 s
    assert refused.status_code == 429
    assert refused["Retry-After"] == "30"


@pytest.mark.django_db
def test_a_throttled_call_costs_one_redis_command(as_agent, alice, monkeypatch):
    """DRF's throttle read every caller's hits from the cache as a pickled list and wrote it
    back: two round trips, each carrying up to the whole limit's timestamps."""
    import redis

    client = as_agent(alice)
    client.get("/api/v1/agent/me/")
    commands = []
    execute = redis.Redis.execute_command

    def counted(self, *args, **options):
        commands.append(args[0])
        return execute(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counted)
    assert client.get("/api/v1/agent/me/").status_code == 200
    assert commands == ["EVALSHA"]


@pytest.mark.django_db
def test_a_token_whose_sub_cannot_be_stored_is_invalid_not_an_outage(persistent):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer " + customer_token(persistent.authentication_setting, "a\x00b"))
    response = client.get(W.format(persistent.widget_key))
    assert response.status_code == 401 and response.json()["code"] == "invalid_token"


@pytest.mark.django_db
def test_rest_calls_go_through_when_the_throttles_redis_is_unreachable(as_agent, persistent, alice, settings):
    """Found by the Redis restart fault test: every REST call answered 500 while Redis was down,
    because the throttles count in the Redis cache. A throttle now lets the call through."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # where the throttles count
    response = as_agent(alice).patch("/api/v1/agent/me/", {"presence": "available"}, format="json")
    assert response.status_code == 200 and response.json()["presence"] == "available"
    assert APIClient().get(f"/api/v1/widget/{persistent.widget_key}/").status_code == 200
