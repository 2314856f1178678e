from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Presence(models.TextChoices):
    AVAILABLE = "available", _("Available")
    BUSY = "busy", _("Busy")
    BUSY_DND = "busy_dnd", _("Busy – do not disturb")
    AWAY = "away", _("Away")
    OFFLINE = "offline", _("Offline")


class Agent(models.Model):
    """A Django user who handles conversations: presence and capacity in units.

    Capacity in use is never stored: it is derived from the agent's conversations
    (see the conversation engine)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="agent",
        verbose_name=_("user"),
    )
    presence = models.CharField(
        _("presence"),
        max_length=16,
        choices=Presence.choices,
        default=Presence.OFFLINE,
        help_text=_("Only agents whose presence a workstream allows receive its conversations."),
    )
    capacity = models.PositiveIntegerField(
        _("capacity"),
        default=100,
        validators=[MinValueValidator(1)],
        help_text=_(
            "Total capacity units. Each conversation costs its workstream's units while it is active. Default: 100."
        ),
    )
    presence_auto = models.BooleanField(
        _("presence follows capacity"),
        default=True,
        help_text=_(
            "While on, an available agent becomes busy when partly loaded and busy – do not "
            "disturb when full. Choosing busy, do not disturb, away or offline turns it off."
        ),
    )
    last_assigned_at = models.DateTimeField(_("last assigned"), null=True, blank=True, editable=False)
    email_notifications = models.BooleanField(
        _("email me when I am away"),
        default=True,
        help_text=_(
            "While no inbox of theirs is open, the agent gets one email (batched) when a conversation "
            "is assigned to them or a customer comes back to them."
        ),
    )
    # Inbox pages open now (session sockets; integrations' token sockets do not count), when the
    # last one closed, and up to when the agent was last emailed what needs them: what happened
    # after both and while no inbox was open is what the next email lists (docs/email.md).
    inbox_connections = models.PositiveIntegerField(default=0, editable=False)
    inbox_left_at = models.DateTimeField(null=True, blank=True, editable=False)
    noticed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("agent")
        verbose_name_plural = _("agents")
        ordering = ["user__username"]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return self.user.get_full_name() or self.user.get_username()


# --- API tokens -------------------------------------------------------------------------------------

KEY_PREFIX = "omni_"  # marks a key as ours for secret scanners; the rest is 32 random bytes
SHOWN_PREFIX = len(KEY_PREFIX) + 6  # characters of a key kept to tell tokens apart: not secret


def key_digest(key: str) -> str:
    """The SHA-256 of an API key, hex: what the database keeps and looks a key up by. A plain
    hash, no salt or stretching: a key is 256 random bits, not a password to guess."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiTokenManager(models.Manager):
    def issue(self, *, user, name: str = "") -> tuple[ApiToken, str]:
        """A new token of ``user`` and its key: the key is in this answer only (never stored)."""
        token = self.model(user=user, name=name)
        key = token.new_key()
        token.save(force_insert=True)
        return token, key


class ApiToken(models.Model):
    """An API key of a user, for ``Authorization: Token <key>`` (integrations, the benchmark)
    and the agent socket's ``{"type": "auth", "token": <key>}``. Only the key's digest is
    stored; the key is shown once, when the token is issued. A user may hold several.

    Revoking is deleting (the admin, ``delete()`` of a token or a queryset, or the user's deletion): every
    path sends ``post_delete`` with ``sender=ApiToken`` and the instance, whose ``pk`` is what
    ``request.auth.pk`` and the agent socket's ``api_token_id`` hold."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens", verbose_name=_("user")
    )
    name = models.CharField(
        _("name"), max_length=100, blank=True, help_text=_("What the token is for, such as an integration's name.")
    )
    prefix = models.CharField(_("key begins with"), max_length=16, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    objects = ApiTokenManager()

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        return f"{self.prefix}…"

    def new_key(self) -> str:
        """Give this token (not saved yet) a new key: returned here, and only its digest kept."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        self.prefix, self.digest = key[:SHOWN_PREFIX], key_digest(key)
        return key
