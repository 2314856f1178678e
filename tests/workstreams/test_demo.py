"""seed_demo, demo_token and agent_token as docs/protocol.md's "Demo data" describes them."""

from __future__ import annotations

import io
import stat

import jwt
import pytest
from django.contrib.auth import get_user_model
from django.core import serializers
from django.core.management import call_command

from agents.models import SHOWN_PREFIX, Agent, ApiToken, key_digest
from omnichannel.api_auth import token_with_user
from tests.keys import rsa_key
from workstreams.customer_jwt import InvalidToken, verify_customer_token
from workstreams.models import (
    AuthenticationKey,
    AuthenticationSetting,
    ChatWidget,
    Queue,
    Workstream,
)

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def snapshot() -> str:
    objects = [
        *get_user_model().objects.order_by("pk"),
        *Agent.objects.order_by("pk"),
        *Queue.objects.order_by("pk"),
        *Workstream.objects.order_by("pk"),
        *AuthenticationSetting.objects.order_by("pk"),
        *AuthenticationKey.objects.order_by("pk"),
        *ChatWidget.objects.order_by("pk"),
    ]
    return serializers.serialize("json", objects, indent=1)


def test_seed_demo_creates_the_demo_data_of_the_protocol():
    output = run("seed_demo")
    User = get_user_model()
    assert User.objects.get(username="admin").is_superuser
    for username in ("agent1", "agent2"):
        agent = Agent.objects.get(user__username=username)
        assert agent.capacity == 100 and agent.presence == "offline"
        assert {q.name for q in agent.queues.all()} == {"Live queue", "Persistent queue"}
    live = Workstream.objects.get(name="Live chat")
    assert (live.persistent, live.distribution_mode, live.capacity_units) == (False, "push", 50)
    assert live.queue.name == "Live queue" and live.queue.operating_hours is None
    persistent = Workstream.objects.get(name="Persistent chat")
    assert (persistent.persistent, persistent.keep_same_agent, persistent.capacity_units) == (True, True, 50)
    assert persistent.queue.name == "Persistent queue"
    assert ChatWidget.objects.get(widget_key="demo-live").authentication_setting is None
    assert ChatWidget.objects.get(widget_key="demo-persistent").authentication_setting.name == "Demo site"
    for username in ("admin", "agent1", "agent2"):
        line = next(line for line in output.splitlines() if line.strip().startswith(username))
        password = line.split()[-1]
        assert User.objects.get(username=username).check_password(password)


def test_seed_demo_twice_gives_the_same_data():
    run("seed_demo")
    first = snapshot()
    run("seed_demo")
    assert snapshot() == first


def test_demo_private_key_is_kept_on_disk_readable_only_by_the_owner(settings):
    run("seed_demo")
    path = settings.DEMO_DIR / "demo-site-private-key.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_demo_token_verifies_with_the_stored_public_key():
    run("seed_demo")
    token = run("demo_token", "alice", "--name", "Alice", "--ttl", "60").strip()
    setting = AuthenticationSetting.objects.get(name="Demo site")
    claims = verify_customer_token(setting, token)
    assert claims["sub"] == "alice" and claims["name"] == "Alice"
    assert claims["exp"] - claims["iat"] == 60


def test_demo_token_refuses_a_lifetime_the_setting_would_refuse():
    from django.core.management.base import CommandError

    run("seed_demo")
    assert run("demo_token", "alice", "--ttl", str(24 * 3600)).strip()
    with pytest.raises(CommandError, match=r"maximum token lifetime \(86400 seconds\)"):
        run("demo_token", "alice", "--ttl", str(24 * 3600 + 1))


def test_a_token_signed_by_another_key_does_not_verify_against_the_demo_setting():
    run("seed_demo")
    setting = AuthenticationSetting.objects.get(name="Demo site")
    forged = jwt.encode(
        {"sub": "alice", "iss": setting.issuer, "aud": setting.audience, "iat": 1, "exp": 4_000_000_000},
        rsa_key("attacker"),
        algorithm="RS256",
        headers={"kid": "demo-1"},
    )
    with pytest.raises(InvalidToken):
        verify_customer_token(setting, forged)


def test_seed_demo_replaces_the_stored_public_key_when_the_private_key_changed(settings):
    run("seed_demo")
    (settings.DEMO_DIR / "demo-site-private-key.pem").unlink()
    run("seed_demo")
    token = run("demo_token", "bob").strip()
    assert verify_customer_token(AuthenticationSetting.objects.get(name="Demo site"), token)["sub"] == "bob"


def test_demo_token_without_seed_data_explains_what_to_do():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="seed_demo"):
        run("demo_token", "alice")


def test_agent_token_prints_a_new_working_key_every_time_and_stores_only_its_digest():
    """The key cannot be shown again (only its digest is stored), so each call issues another."""
    run("seed_demo")
    first = run("agent_token", "agent1").strip()
    second = run("agent_token", "agent1").strip()
    assert first != second
    for key in (first, second):
        assert token_with_user(key).user.username == "agent1"
    stored = list(ApiToken.objects.filter(user__username="agent1").values_list("prefix", "digest", "name"))
    expected = [(key[:SHOWN_PREFIX], key_digest(key), "manage.py agent_token") for key in (first, second)]
    assert sorted(stored) == sorted(expected)


def test_agent_token_refuses_a_user_who_is_not_an_agent():
    from django.core.management.base import CommandError

    run("seed_demo")
    with pytest.raises(CommandError, match="not an agent"):
        run("agent_token", "admin")
