"""Configuration of live and persistent chat: workstreams, queues, operating hours,
customer authentication, chat widgets and automated messages (docs/product.md)."""

from __future__ import annotations

import string
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from agents.models import Agent, Presence

# --- Operating hours ------------------------------------------------------------------------------


def _time_zone_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(zoneinfo.available_timezones())]


class Weekday(models.IntegerChoices):
    MONDAY = 0, _("Monday")
    TUESDAY = 1, _("Tuesday")
    WEDNESDAY = 2, _("Wednesday")
    THURSDAY = 3, _("Thursday")
    FRIDAY = 4, _("Friday")
    SATURDAY = 5, _("Saturday")
    SUNDAY = 6, _("Sunday")


class OperatingHours(models.Model):
    """Weekly opening intervals in a time zone, minus closed dates.

    Intervals are wall-clock times of the time zone, so "09:00–17:00" stays 09:00–17:00
    local time across daylight saving changes."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    time_zone = models.CharField(
        _("time zone"),
        max_length=64,
        choices=_time_zone_choices,
        default="Europe/Copenhagen",
        help_text=_("Opening times below are local times of this time zone."),
    )

    class Meta:
        verbose_name = _("operating hours")
        verbose_name_plural = _("operating hours")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    @cached_property
    def _weekly(self) -> dict[int, list[tuple[time, time | None]]]:
        weekly: dict[int, list[tuple[time, time | None]]] = {day: [] for day in range(7)}
        for interval in sorted(self.intervals.all(), key=lambda i: (i.weekday, i.opens_at)):
            closes = None if interval.closes_at == time(0) else interval.closes_at
            weekly[interval.weekday].append((interval.opens_at, closes))
        return weekly

    @cached_property
    def _closed(self) -> set[date]:
        return {closed.date for closed in self.closed_dates.all()}

    def _instant(self, day: date, wall: time) -> datetime:
        """The first instant at which the local clock shows ``wall`` on ``day``, or later: in
        the autumn fold the first of the two; in the spring gap, the instant the clocks jump
        over it (a gap time read with either offset would land up to a gap's length off)."""
        local = datetime.combine(day, wall, tzinfo=self.tz)  # fold=0: the earlier offset
        instant = local.astimezone(UTC)
        if instant.astimezone(self.tz).replace(tzinfo=None) == local.replace(tzinfo=None):
            return instant
        # Inside a gap: fold=1 falls before the jump, fold=0 after it. Bisect to the jump.
        before = local.replace(fold=1).astimezone(UTC)
        while instant - before > timedelta(seconds=1):
            middle = before + timedelta(seconds=(instant - before) // timedelta(seconds=2))
            if middle.astimezone(self.tz).replace(tzinfo=None) >= local.replace(tzinfo=None):
                instant = middle
            else:
                before = middle
        return instant

    def _periods_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """The opening periods of one local date, as aware instants (sorted). A period that
        lies wholly in a spring gap is empty that day and left out."""
        if day in self._closed:
            return []
        periods = []
        for opens, closes in self._weekly[day.weekday()]:
            start = self._instant(day, opens)
            end = self._instant(day + timedelta(days=1), time(0)) if closes is None else self._instant(day, closes)
            if start < end:
                periods.append((start, end))
        return periods

    def is_open(self, at: datetime | None = None) -> bool:
        """Is the queue open at the instant ``at`` (default: now)?"""
        at = at or timezone.now()
        day = at.astimezone(self.tz).date()
        return any(start <= at < end for start, end in self._periods_on(day))

    def next_opening(self, after: datetime | None = None) -> datetime | None:
        """The first instant at or after ``after`` at which it is open: ``after`` itself
        when open now, else the start of the next opening period; ``None`` when it never
        opens within a year."""
        after = after or timezone.now()
        day = after.astimezone(self.tz).date()
        for offset in range(0, 370):
            for start, end in self._periods_on(day + timedelta(days=offset)):
                if start <= after < end:
                    return after
                if start > after:
                    return start
        return None


class OperatingInterval(models.Model):
    hours = models.ForeignKey(OperatingHours, on_delete=models.CASCADE, related_name="intervals")
    weekday = models.PositiveSmallIntegerField(_("weekday"), choices=Weekday.choices)
    opens_at = models.TimeField(_("opens at"))
    closes_at = models.TimeField(_("closes at"), help_text=_("00:00 means midnight at the end of the day."))

    class Meta:
        verbose_name = _("opening interval")
        verbose_name_plural = _("weekly opening intervals")
        ordering = ["weekday", "opens_at"]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens_at:%H:%M}–{self.closes_at:%H:%M}"

    def clean(self) -> None:
        if self.opens_at is None or self.closes_at is None:
            return
        if self.closes_at != time(0) and self.closes_at <= self.opens_at:
            raise ValidationError({"closes_at": _("Closing time must be after opening time (use 00:00 for midnight).")})


class ClosedDate(models.Model):
    hours = models.ForeignKey(OperatingHours, on_delete=models.CASCADE, related_name="closed_dates")
    date = models.DateField(_("date"))
    label = models.CharField(_("label"), max_length=100, blank=True, help_text=_("For example: Christmas Day."))

    class Meta:
        verbose_name = _("closed date")
        verbose_name_plural = _("closed dates")
        ordering = ["date"]
        constraints = [
            models.UniqueConstraint(
                fields=["hours", "date"],
                name="closed_date_unique_per_hours",
                violation_error_message=_("This date is already closed."),
            )
        ]

    def __str__(self) -> str:
        return f"{self.date:%Y-%m-%d} {self.label}".strip()


# --- Queues ---------------------------------------------------------------------------------------


class Queue(models.Model):
    """Where conversations wait for an agent."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    priority = models.PositiveSmallIntegerField(
        _("priority"),
        default=10,
        help_text=_("Queues with a smaller number are served first. Default: 10."),
    )
    agents = models.ManyToManyField(
        Agent,
        blank=True,
        related_name="queues",
        verbose_name=_("agents"),
        help_text=_("The agents who receive (or may pick) this queue's conversations."),
    )
    operating_hours = models.ForeignKey(
        OperatingHours,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="queues",
        verbose_name=_("operating hours"),
        help_text=_("Empty: always open."),
    )
    round_robin_cursor = models.BigIntegerField(null=True, blank=True, editable=False)
    average_wait_seconds = models.PositiveIntegerField(
        _("average wait (seconds)"),
        null=True,
        blank=True,
        editable=False,
        help_text=_("Recomputed every minute from the last hour's assignments."),
    )

    class Meta:
        verbose_name = _("queue")
        verbose_name_plural = _("queues")
        ordering = ["priority", "name"]

    def __str__(self) -> str:
        return self.name

    def is_open(self, at: datetime | None = None) -> bool:
        return self.operating_hours is None or self.operating_hours.is_open(at)

    def next_opening(self, after: datetime | None = None) -> datetime | None:
        after = after or timezone.now()
        return after if self.operating_hours is None else self.operating_hours.next_opening(after)


# --- Workstreams ----------------------------------------------------------------------------------


class DistributionMode(models.TextChoices):
    PUSH = "push", _("Push: the system assigns conversations")
    PICK = "pick", _("Pick: agents take conversations from the queue")


class AssignmentMethod(models.TextChoices):
    HIGHEST_CAPACITY = "highest_capacity", _("Highest available capacity")
    ROUND_ROBIN = "round_robin", _("Round robin")


class WrapUpCapacity(models.TextChoices):
    ALWAYS = "always", _("Always")
    NEVER = "never", _("Never")
    CUSTOM = "custom", _("For a custom duration")


def default_allowed_presences() -> list[str]:
    return [Presence.AVAILABLE, Presence.BUSY]


# Defaults that depend on the mode: (live, persistent).
MODE_DEFAULTS: dict[str, tuple[timedelta, timedelta]] = {
    "open_timeout": (timedelta(minutes=20), timedelta(days=30)),
    "wrap_up_timeout": (timedelta(minutes=15), timedelta(days=1)),
}
WRAP_UP_BLOCK_MIN = timedelta(seconds=30)
WRAP_UP_BLOCK_MAX = timedelta(minutes=60)


# Attachments (docs/protocol.md, "Attachments"): the defaults of a workstream's limits, and the
# largest size any workstream may allow (the server refuses a larger request before reading it).
DEFAULT_ATTACHMENT_MAX_SIZE = 10 * 1024 * 1024
ATTACHMENT_SIZE_CEILING = 50 * 1024 * 1024
MULTIPART_SLACK = 16 * 1024
DEFAULT_ATTACHMENT_TYPES = "\n".join(
    [
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
        "text/csv",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ]
)


class Workstream(models.Model):
    """A routing and work-distribution container for one mode of chat."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    queue = models.ForeignKey(
        Queue,
        on_delete=models.PROTECT,
        related_name="workstreams",
        verbose_name=_("queue"),
        help_text=_("Conversations of this workstream wait in this queue. Several workstreams may share one."),
    )
    persistent = models.BooleanField(
        _("make chats persistent"),
        default=False,
        help_text=_(
            "Persistent chat: the customer can write at any time and come back days later; "
            "only an agent can end the conversation. Needs an authentication setting on "
            "every widget, “keep the same agent” and push distribution."
        ),
    )
    keep_same_agent = models.BooleanField(
        _("keep the same agent for the entire conversation"),
        default=False,
        help_text=_(
            "A returning customer goes back to the agent who handled the conversation. Required for persistent chat."
        ),
    )
    distribution_mode = models.CharField(
        _("distribution mode"),
        max_length=8,
        choices=DistributionMode.choices,
        default=DistributionMode.PUSH,
        help_text=_("Cannot be changed after the workstream is created."),
    )
    capacity_units = models.PositiveIntegerField(
        _("capacity units per conversation"),
        default=25,
        help_text=_("Units of an agent's capacity that one active conversation uses. Default: 25."),
    )
    allowed_presences = models.JSONField(
        _("allowed presences"),
        default=default_allowed_presences,
        help_text=_("Agents receive conversations only in these presences. Default: available and busy."),
    )
    assignment_method = models.CharField(
        _("assignment method"),
        max_length=20,
        choices=AssignmentMethod.choices,
        default=AssignmentMethod.HIGHEST_CAPACITY,
        help_text=_(
            "Highest available capacity (ties go to the agent assigned least recently), "
            "or round robin among the queue's eligible agents."
        ),
    )
    open_timeout = models.DurationField(
        _("close open conversations after"),
        null=True,
        blank=True,
        help_text=_(
            "An unassigned conversation is closed after this long. Empty: live 20 minutes, persistent 30 days."
        ),
    )
    waiting_timeout = models.DurationField(
        _("close waiting conversations after inactivity"),
        default=timedelta(days=2),
        help_text=_(
            "Persistent chat: a waiting conversation without activity for this long is closed. Default: 2 days."
        ),
    )
    wrap_up_timeout = models.DurationField(
        _("close wrap-up after"),
        null=True,
        blank=True,
        help_text=_("A conversation in wrap-up is closed after this long. Empty: live 15 minutes, persistent 1 day."),
    )
    disconnect_grace = models.DurationField(
        _("customer disconnect grace period"),
        default=timedelta(minutes=3),
        help_text=_(
            "Live chat: a customer who disconnects for longer than this ends the conversation. Default: 3 minutes."
        ),
    )
    wrap_up_capacity = models.CharField(
        _("block capacity for wrap-up"),
        max_length=8,
        choices=WrapUpCapacity.choices,
        default=WrapUpCapacity.ALWAYS,
        help_text=_("Whether a conversation in wrap-up still uses the agent's capacity. Default: always."),
    )
    wrap_up_block_duration = models.DurationField(
        _("wrap-up blocking duration"),
        null=True,
        blank=True,
        help_text=_("With “for a custom duration”: between 30 seconds and 60 minutes."),
    )
    affinity_timeout = models.DurationField(
        _("affinity timeout"),
        default=timedelta(hours=1),
        help_text=_(
            "How long a returning persistent conversation waits for its own agent before it "
            "is routed to the queue. Default: 1 hour."
        ),
    )
    email_unread_after = models.DurationField(
        _("email unread replies after"),
        null=True,
        blank=True,
        default=timedelta(minutes=5),
        help_text=_(
            "An agent's answer that has not reached the customer (no widget open, nothing fetched) "
            "for this long goes to the customer's email, with every other unread answer, and the "
            "customer can reply by email. Empty: never. Default: 5 minutes."
        ),
    )
    label_required = models.BooleanField(
        _("label required at wrap-up"),
        default=False,
        help_text=_("An agent cannot close a conversation of this workstream before giving it at least one label."),
    )
    csat_enabled = models.BooleanField(
        _("ask for satisfaction (CSAT)"),
        default=False,
        help_text=_(
            "When a live chat ends or a persistent conversation closes, after an agent took part, the "
            "widget asks the customer for a rating from 1 to 5 and an optional comment (within 7 days)."
        ),
    )
    attachment_max_size = models.PositiveIntegerField(
        _("largest attachment (bytes)"),
        default=DEFAULT_ATTACHMENT_MAX_SIZE,
        validators=[MinValueValidator(1024), MaxValueValidator(ATTACHMENT_SIZE_CEILING)],
        help_text=_("The largest file a customer or an agent may attach. Default: 10 MB (10485760); at most 50 MB."),
    )
    attachment_types = models.TextField(
        _("allowed attachment types"),
        blank=True,
        default=DEFAULT_ATTACHMENT_TYPES,
        help_text=_(
            "Media types a file may have, one per line or separated by commas; “image/*” allows every "
            "image type. The type is decided from the file's bytes, not its name. Empty: no attachments."
        ),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("workstream")
        verbose_name_plural = _("workstreams")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        self.apply_mode_defaults()
        super().save(*args, **kwargs)

    @property
    def mode(self) -> str:
        return "persistent" if self.persistent else "live"

    @property
    def customer_can_end(self) -> bool:
        return not self.persistent

    def allows_attachment_type(self, content_type: str) -> bool:
        """Whether a file of ``content_type`` (as sniffed) may be attached here."""
        for allowed in self.attachment_type_list:
            if allowed == content_type or (allowed.endswith("/*") and content_type.startswith(allowed[:-1])):
                return True
        return False

    def attachment_request_too_large(self, content_length: int | None) -> bool:
        """Whether an upload request's declared length already says its file is larger than
        allowed here, so it is refused before its body is read. A multipart body is a little
        larger than its file: the headers of its part (``MULTIPART_SLACK``)."""
        return content_length is not None and content_length > self.attachment_max_size + MULTIPART_SLACK

    @property
    def attachment_type_list(self) -> list[str]:
        return [t.strip().lower() for t in self.attachment_types.replace(",", "\n").splitlines() if t.strip()]

    def apply_mode_defaults(self) -> None:
        """Fill empty mode-dependent timeouts with the defaults of the current mode."""
        for field, (live, persistent) in MODE_DEFAULTS.items():
            if getattr(self, field) is None:
                setattr(self, field, persistent if self.persistent else live)

    def clean(self) -> None:
        errors: dict[str, list] = {}
        if self.persistent and not self.keep_same_agent:
            errors.setdefault("keep_same_agent", []).append(
                _("Persistent chat requires keeping the same agent for the entire conversation.")
            )
        if self.persistent and self.distribution_mode != DistributionMode.PUSH:
            errors.setdefault("distribution_mode", []).append(_("Persistent chat requires push distribution."))
        if self.pk:
            stored = Workstream.objects.filter(pk=self.pk).values_list("distribution_mode", flat=True).first()
            if stored and stored != self.distribution_mode:
                errors.setdefault("distribution_mode", []).append(
                    _("The distribution mode cannot be changed after the workstream is created.")
                )
            if self.persistent:
                missing = self.widgets.filter(authentication_setting__isnull=True).values_list("widget_key", flat=True)
                if missing:
                    errors.setdefault("persistent", []).append(
                        _("Persistent chat needs an authentication setting on every widget; missing on: %(widgets)s.")
                        % {"widgets": ", ".join(missing)}
                    )
        presences = self.allowed_presences
        if not isinstance(presences, list) or not presences:
            errors.setdefault("allowed_presences", []).append(_("Choose at least one presence."))
        elif any(p not in Presence.values for p in presences):
            errors.setdefault("allowed_presences", []).append(_("Unknown presence."))
        if self.wrap_up_capacity == WrapUpCapacity.CUSTOM:
            duration = self.wrap_up_block_duration
            if duration is None or not WRAP_UP_BLOCK_MIN <= duration <= WRAP_UP_BLOCK_MAX:
                errors.setdefault("wrap_up_block_duration", []).append(
                    _("With a custom duration, enter between 30 seconds and 60 minutes.")
                )
        for field in ("open_timeout", "waiting_timeout", "wrap_up_timeout", "disconnect_grace", "affinity_timeout"):
            value = getattr(self, field)
            if value is not None and value <= timedelta(0):
                errors.setdefault(field, []).append(_("Enter a positive duration."))
        if errors:
            raise ValidationError(errors)

    def wrap_up_blocks_capacity_for(self) -> timedelta | None:
        """How long a wrap-up conversation keeps blocking capacity: ``None`` = forever,
        ``timedelta(0)`` = not at all."""
        if self.wrap_up_capacity == WrapUpCapacity.ALWAYS:
            return None
        if self.wrap_up_capacity == WrapUpCapacity.NEVER:
            return timedelta(0)
        return self.wrap_up_block_duration or timedelta(0)


# --- Customer authentication ----------------------------------------------------------------------

# A customer JWT may live (exp - iat) at most the setting's max_token_lifetime, itself within these.
TOKEN_LIFETIME_MIN = timedelta(minutes=1)
TOKEN_LIFETIME_MAX = timedelta(days=30)


class AuthenticationSetting(models.Model):
    """How customer JWTs signed by a website are verified (issuer, audience, public keys, and
    how long a token may live)."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    issuer = models.CharField(
        _("issuer"),
        max_length=255,
        help_text=_("The token's “iss” claim must equal this, for example https://www.example.com."),
    )
    audience = models.CharField(
        _("audience"),
        max_length=255,
        blank=True,
        help_text=_("Optional. When set, the token's “aud” claim must contain it."),
    )
    max_token_lifetime = models.DurationField(
        _("maximum token lifetime"),
        default=timedelta(hours=24),
        help_text=_(
            "A token whose “exp” is further than this after its “iat” is refused, however far off its "
            "expiry is. Between 1 minute and 30 days. Default: 24 hours."
        ),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("authentication setting")
        verbose_name_plural = _("authentication settings")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        lifetime = self.max_token_lifetime
        if lifetime is not None and not TOKEN_LIFETIME_MIN <= lifetime <= TOKEN_LIFETIME_MAX:
            raise ValidationError({"max_token_lifetime": _("Enter between 1 minute and 30 days.")})


class KeyAlgorithm(models.TextChoices):
    RS256 = "RS256", "RS256"
    ES256 = "ES256", "ES256"


def algorithm_for_public_key(pem: str) -> str:
    """RS256 for an RSA key (2048 bits or more), ES256 for a P-256 key; else ValueError."""
    try:
        key = load_pem_public_key(pem.strip().encode())
    except (ValueError, TypeError) as exc:
        raise ValueError(_("This is not a PEM public key.")) from exc
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ValueError(_("RSA keys must have at least 2048 bits."))
        return KeyAlgorithm.RS256
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return KeyAlgorithm.ES256
    raise ValueError(_("Only RSA (RS256) and P-256 (ES256) public keys are supported."))


class AuthenticationKey(models.Model):
    """One public key of a setting; several keys with distinct key ids allow rotation."""

    setting = models.ForeignKey(AuthenticationSetting, on_delete=models.CASCADE, related_name="keys")
    kid = models.CharField(
        _("key id (kid)"),
        max_length=100,
        blank=True,
        help_text=_("Optional. Tokens whose header names this “kid” are verified with this key."),
    )
    public_key = models.TextField(
        _("public key (PEM)"),
        help_text=_("-----BEGIN PUBLIC KEY----- … An RSA key (RS256) or a P-256 key (ES256)."),
    )
    algorithm = models.CharField(_("algorithm"), max_length=5, choices=KeyAlgorithm.choices, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("public key")
        verbose_name_plural = _("public keys")
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["setting", "kid"], condition=~models.Q(kid=""), name="authentication_key_unique_kid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.algorithm} {self.kid}".strip() if self.algorithm else str(_("public key"))

    def save(self, *args, **kwargs) -> None:
        self.public_key = self.public_key.strip() + "\n"
        self.algorithm = algorithm_for_public_key(self.public_key)
        super().save(*args, **kwargs)

    def clean(self) -> None:
        try:
            self.algorithm = algorithm_for_public_key(self.public_key or "")
        except ValueError as exc:
            raise ValidationError({"public_key": str(exc)}) from exc


# --- Chat widgets ---------------------------------------------------------------------------------

colour_validator = RegexValidator(r"^#[0-9a-fA-F]{6}$", _("Enter a colour as #RRGGBB."))
origin_validator = RegexValidator(
    r"^https?://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$",
    _("Enter origins like https://www.example.com, one per line, without a path."),
)


class ChatWidget(models.Model):
    """The embeddable chat widget of a workstream."""

    workstream = models.ForeignKey(
        Workstream, on_delete=models.CASCADE, related_name="widgets", verbose_name=_("workstream")
    )
    widget_key = models.SlugField(
        _("widget key"),
        max_length=64,
        unique=True,
        help_text=_("Public identifier used in the embed snippet and the API URLs."),
    )
    title = models.CharField(_("title"), max_length=100, default=_("Chat with us"))
    subtitle = models.CharField(_("subtitle"), max_length=200, blank=True)
    colour = models.CharField(_("colour"), max_length=7, default="#2563eb", validators=[colour_validator])
    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES, default=settings.LANGUAGE_CODE)
    allowed_origins = models.TextField(
        _("allowed origins"),
        blank=True,
        help_text=_(
            "Websites that may embed the widget, one per line, e.g. https://www.example.com. "
            "Empty: only this server's own pages (such as the demo page)."
        ),
    )
    authentication_setting = models.ForeignKey(
        AuthenticationSetting,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="widgets",
        verbose_name=_("authentication setting"),
        help_text=_("Required for persistent chat. Empty: anonymous visitors (live chat only)."),
    )
    operating_hours = models.ForeignKey(
        OperatingHours,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="widgets",
        verbose_name=_("operating hours"),
        help_text=_("Shown in the widget's offline state. Empty: the queue's operating hours."),
    )
    page_url = models.URLField(
        _("page of the website"),
        blank=True,
        help_text=_(
            "The page of your website where customers open this widget, e.g. https://www.example.com/support. "
            "Emails to customers link back to it. Empty: the widget's page on this server."
        ),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("chat widget")
        verbose_name_plural = _("chat widgets")
        ordering = ["title"]

    def __str__(self) -> str:
        return f"{self.title} ({self.widget_key})"

    @property
    def origins(self) -> list[str]:
        return [line.strip().rstrip("/") for line in self.allowed_origins.splitlines() if line.strip()]

    @property
    def effective_operating_hours(self) -> OperatingHours | None:
        return self.operating_hours or self.workstream.queue.operating_hours

    def clean(self) -> None:
        errors: dict[str, list] = {}
        for origin in self.origins:
            try:
                origin_validator(origin)
            except ValidationError:
                errors.setdefault("allowed_origins", []).append(
                    _("“%(origin)s” is not an origin like https://www.example.com.") % {"origin": origin}
                )
        workstream = getattr(self, "workstream", None) if self.workstream_id else None
        if workstream is not None and workstream.persistent and self.authentication_setting_id is None:
            errors.setdefault("authentication_setting", []).append(
                _("A widget of a persistent workstream needs an authentication setting.")
            )
        if errors:
            raise ValidationError(errors)

    def embed_snippet(self) -> str:
        base = settings.SITE_URL
        return (
            f'<script src="{base}/static/omnichannel-widget.js" data-widget-key="{self.widget_key}" '
            f'data-server="{base}" async></script>'
        )


# --- Automated messages ---------------------------------------------------------------------------


class AutomatedMessageKind(models.TextChoices):
    AGENT_JOINED = "agent_joined", _("Agent joined")
    QUEUE_POSITION = "queue_position", _("Position in queue (live chat)")
    AVERAGE_WAIT_TIME = "average_wait_time", _("Average wait time (live chat)")
    OUTSIDE_OPERATING_HOURS = "outside_operating_hours", _("Outside operating hours")
    OFFLINE_PERSISTENT = "offline_persistent", _("No agent now (persistent chat)")
    MOVED_TO_WAITING = "moved_to_waiting", _("Moved to waiting")
    TRANSFERRED = "transferred", _("Transferred")
    ENDED_BY_AGENT = "ended_by_agent", _("Ended by agent")
    ENDED_BY_CUSTOMER = "ended_by_customer", _("Ended by customer")
    AUTO_CLOSED = "auto_closed", _("Closed automatically")


PLACEHOLDERS = ("agent_name", "queue_name", "position", "minutes")


def placeholders_in(text: str) -> list[str]:
    """The ``{names}`` used in a text, ``{name:spec}`` and ``{name!r}`` given back whole so
    they count as unknown; ValueError for malformed braces."""
    names = []
    for _literal, field, spec, conversion in string.Formatter().parse(text):
        if field is not None:
            names.append(field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else ""))
    return names


class AutomatedMessage(models.Model):
    """Text the system posts into conversations. Rows without a workstream are the
    global defaults (shipped in English and Danish); a workstream overrides any of them."""

    workstream = models.ForeignKey(
        Workstream,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="automated_messages",
        verbose_name=_("workstream"),
        help_text=_("Empty: the global default for every workstream."),
    )
    kind = models.CharField(_("kind"), max_length=32, choices=AutomatedMessageKind.choices)
    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES)
    text = models.TextField(
        _("text"),
        help_text=_("Placeholders: {agent_name}, {queue_name}, {position}, {minutes}."),
    )

    class Meta:
        verbose_name = _("automated message")
        verbose_name_plural = _("automated messages")
        ordering = ["workstream__name", "kind", "language"]
        constraints = [
            models.UniqueConstraint(
                fields=["workstream", "kind", "language"],
                condition=models.Q(workstream__isnull=False),
                name="automated_message_unique_override",
                violation_error_message=_("This workstream already overrides this kind in this language."),
            ),
            models.UniqueConstraint(
                fields=["kind", "language"],
                condition=models.Q(workstream__isnull=True),
                name="automated_message_unique_default",
                violation_error_message=_("There is already a global default of this kind in this language."),
            ),
        ]

    def __str__(self) -> str:
        scope = self.workstream.name if self.workstream_id else _("default")
        return f"{self.get_kind_display()} · {self.language} · {scope}"

    def clean(self) -> None:
        try:
            names = placeholders_in(self.text or "")
        except ValueError:
            raise ValidationError({"text": _("Unbalanced braces. Write {{ and }} for literal braces.")}) from None
        unknown = sorted({name for name in names if name not in PLACEHOLDERS})
        if unknown or any(name == "" for name in names):
            raise ValidationError(
                {
                    "text": _("Unknown placeholder: %(names)s. Use %(allowed)s.")
                    % {
                        "names": ", ".join(f"{{{n}}}" for n in unknown) or "{}",
                        "allowed": ", ".join(f"{{{p}}}" for p in PLACEHOLDERS),
                    }
                }
            )

    def render(self, **values: object) -> str:
        context = {name: values.get(name, "") for name in PLACEHOLDERS}
        return self.text.format_map(context)


# --- Quick replies --------------------------------------------------------------------------------


class QuickReply(models.Model):
    """A canned answer agents insert into the composer with one click; per workstream."""

    workstream = models.ForeignKey(
        Workstream, on_delete=models.CASCADE, related_name="quick_replies", verbose_name=_("workstream")
    )
    title = models.CharField(_("title"), max_length=60, help_text=_("The button agents see, e.g. “Greeting”."))
    body = models.TextField(
        _("text"),
        max_length=4000,
        help_text=_("Inserted into the composer; the agent can edit it before sending."),
    )
    position = models.PositiveSmallIntegerField(_("position"), default=0, help_text=_("Smaller numbers first."))

    class Meta:
        verbose_name = _("quick reply")
        verbose_name_plural = _("quick replies")
        ordering = ["workstream", "position", "title"]
        constraints = [
            models.UniqueConstraint(
                fields=["workstream", "title"],
                name="quick_reply_unique_title",
                violation_error_message=_("This workstream already has a quick reply with this title."),
            ),
        ]

    def __str__(self) -> str:
        return self.title


# --- Pre-chat form --------------------------------------------------------------------------------


class PrechatFieldType(models.TextChoices):
    TEXT = "text", _("Text (one line)")
    EMAIL = "email", _("Email address")
    TEXTAREA = "textarea", _("Text (several lines)")
    CHOICE = "choice", _("Choice")


# The longest answer of each type (characters).
PRECHAT_MAX_LENGTH = {
    PrechatFieldType.TEXT: 200,
    PrechatFieldType.EMAIL: 254,
    PrechatFieldType.TEXTAREA: 2000,
    PrechatFieldType.CHOICE: 200,
}


class PrechatField(models.Model):
    """A question of a workstream's pre-chat form, asked by the widget before the first message
    (docs/protocol.md, "Pre-chat form"); the answers are stored on the conversation."""

    workstream = models.ForeignKey(
        Workstream, on_delete=models.CASCADE, related_name="prechat_fields", verbose_name=_("workstream")
    )
    name = models.SlugField(
        _("name"),
        max_length=50,
        help_text=_(
            "The answer's key in the API, e.g. topic. Answers named name and email fill a visitor's "
            "name and email address."
        ),
    )
    label = models.CharField(_("label (English)"), max_length=200)
    label_da = models.CharField(
        _("label (Danish)"), max_length=200, blank=True, help_text=_("Empty: the English label is shown.")
    )
    type = models.CharField(_("type"), max_length=10, choices=PrechatFieldType.choices, default=PrechatFieldType.TEXT)
    required = models.BooleanField(_("required"), default=False)
    choices = models.TextField(_("choices"), blank=True, help_text=_("For a choice: one answer per line."))
    position = models.PositiveSmallIntegerField(_("position"), default=0, help_text=_("Smaller numbers first."))

    class Meta:
        verbose_name = _("pre-chat question")
        verbose_name_plural = _("pre-chat form")
        ordering = ["workstream", "position", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["workstream", "name"],
                name="prechat_field_unique_name",
                violation_error_message=_("This workstream already asks a question with this name."),
            ),
        ]

    def __str__(self) -> str:
        return self.label

    def clean(self) -> None:
        if self.type == PrechatFieldType.CHOICE and not self.choice_list:
            raise ValidationError({"choices": _("A choice needs at least one answer to choose from.")})
        if self.type != PrechatFieldType.CHOICE and self.choices.strip():
            raise ValidationError({"choices": _("Only a choice has answers to choose from.")})
        if self.name == "email" and self.type != PrechatFieldType.EMAIL:
            raise ValidationError({"type": _("The question named email must be of the type email address.")})

    @property
    def choice_list(self) -> list[str]:
        return [line.strip() for line in self.choices.splitlines() if line.strip()]

    def label_in(self, language: str) -> str:
        return self.label_da if language == "da" and self.label_da else self.label

    def as_config(self, language: str) -> dict:
        """As the widget configuration carries it (docs/protocol.md)."""
        return {
            "name": self.name,
            "label": self.label_in(language),
            "type": self.type,
            "required": self.required,
            "choices": self.choice_list,
        }
