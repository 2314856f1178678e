"""Customers, conversations and messages. Only ``conversations.services`` writes them."""

from __future__ import annotations

import uuid

from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from agents.models import Agent
from workstreams.models import AuthenticationSetting, ChatWidget, Queue, Workstream


class Customer(models.Model):
    """Someone chatting from a widget: identified by the ``sub`` of a verified JWT within an
    authentication setting, or by a visitor id within one widget (anonymous live chat)."""

    authentication_setting = models.ForeignKey(
        AuthenticationSetting,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="customers",
        verbose_name=_("authentication setting"),
    )
    widget = models.ForeignKey(
        ChatWidget,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="visitors",
        verbose_name=_("widget (anonymous visitors)"),
    )
    external_id = models.CharField(_("external id"), max_length=255)
    display_name = models.CharField(_("name"), max_length=255, blank=True)
    email = models.EmailField(_("email"), blank=True)
    context = models.JSONField(_("context variables"), default=dict, blank=True)
    connection_count = models.PositiveIntegerField(_("open connections"), default=0)
    disconnected_at = models.DateTimeField(_("disconnected at"), null=True, blank=True)
    fetched_at = models.DateTimeField(
        _("messages fetched at"),
        null=True,
        blank=True,
        help_text=_("The last time the customer read the conversation's messages over the REST API."),
    )
    email_unsubscribed_at = models.DateTimeField(
        _("unsubscribed from emails"),
        null=True,
        blank=True,
        help_text=_("Set by the unsubscribe link of an email: no more unread replies by email."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        constraints = [
            models.UniqueConstraint(
                fields=["authentication_setting", "external_id"],
                condition=models.Q(authentication_setting__isnull=False),
                name="customer_unique_per_setting",
            ),
            models.UniqueConstraint(
                fields=["widget", "external_id"],
                condition=models.Q(authentication_setting__isnull=True),
                name="customer_unique_visitor_per_widget",
            ),
            models.CheckConstraint(
                condition=models.Q(authentication_setting__isnull=False) | models.Q(widget__isnull=False),
                name="customer_has_a_scope",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return self.display_name or self.email or _("Visitor %(id)s") % {"id": self.external_id[:8]}

    @property
    def authenticated(self) -> bool:
        return self.authentication_setting_id is not None


class Status(models.TextChoices):
    OPEN = "open", _("Open")
    ACTIVE = "active", _("Active")
    WAITING = "waiting", _("Waiting")
    WRAP_UP = "wrap_up", _("Wrap-up")
    CLOSED = "closed", _("Closed")


# The one table of allowed transitions (docs/architecture.md). A transition to the same status
# (active -> active on transfer, open -> open on transfer to a queue) is listed explicitly.
TRANSITIONS: dict[str, frozenset[str]] = {
    Status.OPEN: frozenset({Status.OPEN, Status.ACTIVE, Status.CLOSED}),
    Status.ACTIVE: frozenset({Status.ACTIVE, Status.OPEN, Status.WAITING, Status.WRAP_UP, Status.CLOSED}),
    Status.WAITING: frozenset({Status.ACTIVE, Status.OPEN, Status.WRAP_UP, Status.CLOSED}),
    Status.WRAP_UP: frozenset({Status.CLOSED}),
    Status.CLOSED: frozenset(),
}
ONGOING = (Status.OPEN, Status.ACTIVE, Status.WAITING)
# Where the agent holding a conversation may still write in it: a note (in wrap-up too), a file.
WRITABLE = (Status.ACTIVE, Status.WAITING, Status.WRAP_UP)


class EndedBy(models.TextChoices):
    AGENT = "agent", _("Agent")
    CUSTOMER = "customer", _("Customer")
    SUPERVISOR = "supervisor", _("Supervisor")
    SYSTEM = "system", _("System")


class Label(models.Model):
    """A contact reason agents set on conversations (``conversations.services.conversation_labels_set``);
    defined in the admin, filtered on in the inbox, the supervisor view, the API and the reports."""

    name = models.SlugField(
        _("name"),
        max_length=50,
        unique=True,
        allow_unicode=True,
        help_text=_("Lower-case letters, digits, hyphens and underscores, as agents and the API name it: billing."),
    )
    colour = models.CharField(
        _("colour"),
        max_length=7,
        default="#64748b",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", _("A colour is # and six hexadecimal digits: #1d4ed8."))],
        help_text=_("The label's colour in the inbox, as #RRGGBB."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = pgettext_lazy("conversation", "label")
        verbose_name_plural = pgettext_lazy("conversation", "labels")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Conversation(models.Model):
    workstream = models.ForeignKey(
        Workstream, on_delete=models.PROTECT, related_name="conversations", verbose_name=_("workstream")
    )
    widget = models.ForeignKey(
        ChatWidget, on_delete=models.PROTECT, related_name="conversations", verbose_name=_("widget")
    )
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="conversations", verbose_name=_("queue"))
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="conversations", verbose_name=_("customer")
    )
    agent = models.ForeignKey(
        Agent,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="conversations",
        verbose_name=_("agent"),
    )
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.OPEN)
    language = models.CharField(_("language"), max_length=8)
    last_seq = models.PositiveIntegerField(
        _("last seq"), default=0, help_text=_("Every message counts, internal notes included: the agents' numbering.")
    )
    customer_last_seq = models.PositiveIntegerField(
        _("last seq the customer sees"),
        default=0,
        help_text=_("Messages the customer sees (not internal notes): the customer's numbering, without gaps."),
    )

    created_at = models.DateTimeField(_("created"))
    queued_at = models.DateTimeField(
        _("waiting for an agent since"), null=True, blank=True, help_text=_("First-in first-out key of the queue.")
    )
    first_assigned_at = models.DateTimeField(_("first assigned"), null=True, blank=True)
    assigned_at = models.DateTimeField(_("assigned"), null=True, blank=True)
    last_customer_message_at = models.DateTimeField(_("last customer message"), null=True, blank=True)
    last_agent_message_at = models.DateTimeField(_("last agent message"), null=True, blank=True)
    last_activity_at = models.DateTimeField(_("last activity"))
    waiting_since = models.DateTimeField(_("waiting since"), null=True, blank=True)
    returned_at = models.DateTimeField(
        _("customer returned"),
        null=True,
        blank=True,
        help_text=_("Set while a returning customer waits for the agent's answer (affinity)."),
    )
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    ended_by = models.CharField(_("ended by"), max_length=10, choices=EndedBy.choices, blank=True)
    end_reason = models.CharField(_("end reason"), max_length=64, blank=True)
    wrap_up_notes = models.TextField(_("wrap-up notes"), blank=True)
    agent_read_seq = models.PositiveIntegerField(
        _("read by the agent up to"),
        default=0,
        help_text=_("The last seq the assigned agent has seen; later customer messages are unread."),
    )
    # What the customer was last told in live chat, so updates are sent only on change.
    notified_position = models.PositiveIntegerField(null=True, blank=True)
    notified_wait_minutes = models.PositiveIntegerField(null=True, blank=True)
    offline_notified = models.BooleanField(default=False)
    emailed_seq = models.PositiveIntegerField(
        _("emailed up to"),
        default=0,
        help_text=_("The last seq sent to the customer by email as an unread reply (sent once, never again)."),
    )
    started_offline = models.BooleanField(
        _("left as an offline message"),
        default=False,
        help_text=_("Left outside operating hours with the offline form: the customer is answered by email."),
    )
    prechat = models.JSONField(
        _("pre-chat answers"), default=dict, blank=True, help_text=_("The answers to the workstream's pre-chat form.")
    )
    # The satisfaction survey (CSAT): asked once (conversations.services.common._save), answered
    # once (conversations.services.feedback).
    csat_requested_at = models.DateTimeField(_("satisfaction asked"), null=True, blank=True)
    csat_rating = models.PositiveSmallIntegerField(
        _("satisfaction"), null=True, blank=True, help_text=_("The customer's rating, 1 (poor) to 5 (excellent).")
    )
    csat_comment = models.TextField(_("satisfaction comment"), blank=True)
    csat_submitted_at = models.DateTimeField(_("satisfaction answered"), null=True, blank=True)
    labels = models.ManyToManyField(
        Label, blank=True, related_name="conversations", verbose_name=pgettext_lazy("conversation", "labels")
    )

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "workstream"],
                condition=models.Q(status__in=["open", "active", "waiting"]),
                name="conversation_one_ongoing_per_customer_and_workstream",
            ),
        ]
        indexes = [
            models.Index(fields=["queue", "status", "queued_at"], name="conversation_queue_fifo"),
            models.Index(fields=["agent", "status"], name="conversation_agent_status"),
            models.Index(fields=["status", "last_activity_at"], name="conversation_status_activity"),
            models.Index(fields=["customer", "workstream", "-created_at"], name="conversation_customer_recent"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_status_display()}"

    @property
    def mode(self) -> str:
        return self.workstream.mode

    @property
    def customer_can_end(self) -> bool:
        return self.workstream.customer_can_end and self.status in (Status.OPEN, Status.ACTIVE)


class Sender(models.TextChoices):
    CUSTOMER = "customer", _("Customer")
    AGENT = "agent", _("Agent")
    SYSTEM = "system", _("System")


class Channel(models.TextChoices):
    CHAT = "chat", _("Chat")
    EMAIL = "email", _("Email")


class Message(models.Model):
    """A message of a conversation. ``seq`` numbers every message (agents' clients); an
    internal note (written by an agent for agents) has no ``customer_seq``, which numbers the
    messages a customer sees, so the customer's numbering has no gaps (docs/protocol.md)."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveIntegerField(_("seq"))
    customer_seq = models.PositiveIntegerField(
        _("seq the customer sees"), null=True, blank=True, help_text=_("Empty for an internal note.")
    )
    sender = models.CharField(_("sender"), max_length=8, choices=Sender.choices)
    agent = models.ForeignKey(Agent, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    author = models.CharField(_("author"), max_length=255, blank=True)
    kind = models.CharField(_("kind"), max_length=32, blank=True)
    body = models.TextField(_("body"))
    client_id = models.CharField(_("client id"), max_length=64, null=True, blank=True)  # noqa: DJ001 - NULL = none given
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices, default=Channel.CHAT)
    # What its attachments were when it was sent (id, name, size, content_type of each; NULL:
    # none), so that a page of history is one query; the files are the Attachment rows.
    attachments = models.JSONField(_("attachments"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"))

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["conversation", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="message_unique_seq"),
            # The customer's pages; notes (NULL) are outside it.
            models.UniqueConstraint(fields=["conversation", "customer_seq"], name="message_unique_customer_seq"),
            models.UniqueConstraint(
                fields=["conversation", "sender", "client_id"],
                condition=models.Q(client_id__isnull=False),
                name="message_unique_client_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.conversation_id}#{self.seq} {self.sender}"

    @property
    def internal(self) -> bool:
        """An internal note: agents see it, the customer never does."""
        return self.customer_seq is None


def _attachment_path(attachment: Attachment, filename: str) -> str:
    """Where a file is stored: by month and its id, never by the name a client gave."""
    return f"attachments/{attachment.created_at:%Y/%m}/{attachment.pk.hex}"


class Attachment(models.Model):
    """A file uploaded by a customer or an agent, for a message of a conversation. Until a
    message carries it (``message``), only its uploader may attach it: a customer within its
    workstream (and ongoing conversation, when it had one), an agent within the conversation.
    Never sent, it is removed after a day (conversations.sweeps). Its ``content_type`` is what
    its bytes are (conversations.files), not what the client said."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workstream = models.ForeignKey(Workstream, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, null=True, blank=True, related_name="attachments"
    )
    message = models.ForeignKey(Message, on_delete=models.CASCADE, null=True, blank=True, related_name="files")
    sender = models.CharField(_("uploaded by"), max_length=8, choices=Sender.choices)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, null=True, blank=True, related_name="attachments")
    agent = models.ForeignKey(Agent, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    file = models.FileField(_("file"), upload_to=_attachment_path, max_length=255)
    name = models.CharField(_("name"), max_length=255)
    size = models.PositiveBigIntegerField(_("size"))
    content_type = models.CharField(_("type"), max_length=127)
    created_at = models.DateTimeField(_("uploaded"))

    class Meta:
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")
        indexes = [
            # The orphan sweep: uploads never sent, oldest first.
            models.Index(fields=["created_at"], condition=models.Q(message__isnull=True), name="attachment_unsent"),
        ]

    def __str__(self) -> str:
        return self.name

    def summary(self) -> dict:
        """What a message keeps of it (``Message.attachments``)."""
        return {"id": str(self.pk), "name": self.name, "size": self.size, "content_type": self.content_type}


class EmailKind(models.TextChoices):
    UNREAD_REPLIES = "unread_replies", _("Unread replies")
    TRANSCRIPT = "transcript", _("Transcript")
    OFFLINE_ANSWER = "offline_answer", _("Answer to an offline message")
    AGENT_NOTICES = "agent_notices", _("Notices to an agent")


class OutboundEmail(models.Model):
    """An email the engine decided to send, written in the transaction of that decision (the
    outbox): a Celery task sends it after the commit, the email sweep retries what is not sent
    (conversations.emails). Kept as a record of what went out."""

    kind = models.CharField(_("kind"), max_length=16, choices=EmailKind.choices)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, null=True, blank=True, related_name="emails"
    )
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, null=True, blank=True, related_name="emails")
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, null=True, blank=True, related_name="emails")
    to = models.EmailField(_("to"))
    subject = models.CharField(_("subject"), max_length=255)
    body_text = models.TextField(_("plain text"))
    body_html = models.TextField(_("HTML"), blank=True)
    headers = models.JSONField(_("headers"), default=dict, blank=True)
    message_id = models.CharField(_("Message-ID"), max_length=255, unique=True)
    first_seq = models.PositiveIntegerField(null=True, blank=True)
    last_seq = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(_("created"))
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        verbose_name = _("email")
        verbose_name_plural = _("emails")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=models.Q(sent_at__isnull=True), name="email_unsent")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.to}"
