from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
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
