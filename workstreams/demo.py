"""The demo data of docs/protocol.md: users, queues, workstreams, widgets and the "Demo site"
authentication setting whose private key stays on this server's disk (never in git)."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from agents.models import Agent, Presence
from conversations.models import Label
from workstreams.models import (
    AuthenticationKey,
    AuthenticationSetting,
    ChatWidget,
    DistributionMode,
    PrechatField,
    PrechatFieldType,
    Queue,
    Workstream,
)

DEMO_SETTING_NAME = "Demo site"
DEMO_ISSUER = "omnichannel-demo-site"
DEMO_AUDIENCE = "omnichannel"
DEMO_KID = "demo-1"
DEMO_USERS = ("admin", "agent1", "agent2")


@dataclass
class SeedResult:
    passwords: dict[str, str]
    widgets: list[ChatWidget]


def _demo_dir() -> Path:
    directory = Path(settings.DEMO_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def private_key_path() -> Path:
    return _demo_dir() / "demo-site-private-key.pem"


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def ensure_private_key() -> rsa.RSAPrivateKey:
    """The demo site's RSA key, generated on first use and kept in ``DEMO_DIR``."""
    path = private_key_path()
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if isinstance(key, rsa.RSAPrivateKey):
            return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_private(
        path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    return key


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _passwords() -> dict[str, str]:
    path = _demo_dir() / "credentials.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for username in DEMO_USERS:
        if not stored.get(username):
            stored[username] = secrets.token_urlsafe(12)
            changed = True
    if changed:
        _write_private(path, json.dumps(stored, indent=2).encode())
    return stored


def _site_origins() -> str:
    parts = urlsplit(settings.SITE_URL)
    origins = {f"{parts.scheme}://{parts.netloc}"}
    if parts.hostname in ("127.0.0.1", "localhost"):
        port = f":{parts.port}" if parts.port else ""
        origins |= {f"{parts.scheme}://127.0.0.1{port}", f"{parts.scheme}://localhost{port}"}
    return "\n".join(sorted(origins))


def _upsert(model, lookup: dict, values: dict):
    """Like ``update_or_create``, but saves only what differs, so a second run writes nothing."""
    obj = model.objects.filter(**lookup).first()
    if obj is None:
        return model.objects.create(**lookup, **values)
    changed = [field for field, value in values.items() if getattr(obj, field) != value]
    if changed:
        for field in changed:
            setattr(obj, field, values[field])
        obj.save()
    return obj


# The live workstream's pre-chat form (docs/protocol.md, "Demo data additions"):
# name, label, Danish label, type, required, choices.
DEMO_PRECHAT = [
    ("name", "Your name", "Dit navn", PrechatFieldType.TEXT, True, ""),
    ("email", "Your email", "Din e-mail", PrechatFieldType.EMAIL, True, ""),
    ("topic", "Topic", "Emne", PrechatFieldType.CHOICE, False, "Orders\nReturns\nOther"),
]
DEMO_LABELS = {"billing": "#2563eb", "delivery": "#16a34a", "returns": "#d97706"}


@transaction.atomic
def seed_demo() -> SeedResult:
    """Create or update the demo data; running it again changes nothing."""
    User = get_user_model()
    passwords = _passwords()

    agents = []
    for username in DEMO_USERS:
        names = {"admin": ("", ""), "agent1": ("Alice", "Agent"), "agent2": ("Bob", "Agent")}[username]
        user = _upsert(
            User,
            {"username": username},
            {
                "is_staff": username == "admin",
                "is_superuser": username == "admin",
                "email": f"{username}@example.com",
                "first_name": names[0],
                "last_name": names[1],
            },
        )
        if not user.check_password(passwords[username]):
            user.set_password(passwords[username])
            user.save(update_fields=["password"])
        if username != "admin":
            agent = _upsert(Agent, {"user": user}, {"capacity": 100, "presence": Presence.OFFLINE})
            agents.append(agent)

    live_queue = _upsert(Queue, {"name": "Live queue"}, {"priority": 10, "operating_hours": None})
    persistent_queue = _upsert(Queue, {"name": "Persistent queue"}, {"priority": 10, "operating_hours": None})
    for queue in (live_queue, persistent_queue):
        queue.agents.add(*agents)

    live = _upsert(
        Workstream,
        {"name": "Live chat"},
        {
            "queue": live_queue,
            "persistent": False,
            "keep_same_agent": False,
            "distribution_mode": DistributionMode.PUSH,
            "capacity_units": 50,
            "csat_enabled": True,  # the widget asks how it went (docs/protocol.md)
        },
    )
    persistent = _upsert(
        Workstream,
        {"name": "Persistent chat"},
        {
            "queue": persistent_queue,
            "persistent": True,
            "keep_same_agent": True,
            "distribution_mode": DistributionMode.PUSH,
            "capacity_units": 50,
            # Unread answers go to the customer's email after 5 minutes (docs/email.md).
            "email_unread_after": timedelta(minutes=5),
            "csat_enabled": True,
        },
    )

    setting = _upsert(
        AuthenticationSetting, {"name": DEMO_SETTING_NAME}, {"issuer": DEMO_ISSUER, "audience": DEMO_AUDIENCE}
    )
    pem = public_pem(ensure_private_key())
    key = setting.keys.filter(kid=DEMO_KID).first()
    if key is None:
        AuthenticationKey.objects.create(setting=setting, kid=DEMO_KID, public_key=pem)
    elif key.public_key.strip() != pem.strip():
        key.public_key = pem
        key.save()

    for position, (name, label, label_da, kind, required, choices) in enumerate(DEMO_PRECHAT):
        _upsert(
            PrechatField,
            {"workstream": live, "name": name},
            {
                "label": label,
                "label_da": label_da,
                "type": kind,
                "required": required,
                "choices": choices,
                "position": position,
            },
        )

    # Contact reasons agents set in the inbox (docs/protocol.md, "Labels").
    for name, colour in DEMO_LABELS.items():
        _upsert(Label, {"name": name}, {"colour": colour})

    origins = _site_origins()
    widgets = [
        _upsert(
            ChatWidget,
            {"widget_key": "demo-live"},
            {
                "workstream": live,
                "title": "Live chat demo",
                "subtitle": "We usually answer within a minute",
                "allowed_origins": origins,
                "authentication_setting": None,
            },
        ),
        _upsert(
            ChatWidget,
            {"widget_key": "demo-persistent"},
            {
                "workstream": persistent,
                "title": "Persistent chat demo",
                "subtitle": "Write any time; we answer here",
                "allowed_origins": origins,
                "authentication_setting": setting,
            },
        ),
    ]
    for obj in (live, persistent, *widgets):
        obj.full_clean()
    return SeedResult(passwords={u: passwords[u] for u in DEMO_USERS}, widgets=widgets)


class TokenTooLong(ValueError):
    """A demo token asked to live longer than the setting's maximum (it would be refused)."""

    def __init__(self, maximum: int) -> None:
        super().__init__(f"at most {maximum} seconds")
        self.maximum = maximum


def demo_token(sub: str, *, name: str | None = None, email: str | None = None, ttl: int = 3600) -> str:
    """A JWT for the "Demo site" setting, signed with the key on this server's disk."""
    setting = AuthenticationSetting.objects.get(name=DEMO_SETTING_NAME)
    maximum = int(setting.max_token_lifetime.total_seconds())
    if ttl > maximum:
        raise TokenTooLong(maximum)
    now = timezone.now()
    claims: dict[str, object] = {
        "sub": sub,
        "iss": setting.issuer,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(seconds=ttl),
    }
    if setting.audience:
        claims["aud"] = setting.audience
    if name:
        claims["name"] = name
    if email:
        claims["email"] = email
    return jwt.encode(claims, ensure_private_key(), algorithm="RS256", headers={"kid": DEMO_KID})
