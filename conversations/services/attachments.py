"""Attachments: a customer or an agent uploads a file (checked against the workstream's limits by
what its bytes are), then sends it in a message (``_claim``), by id. An upload no message took is
removed after ``ATTACHMENT_ORPHAN_AGE`` (``attachments_sweep``). docs/protocol.md, "Attachments".
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from agents.models import Agent
from conversations import files
from conversations.errors import FileTooLarge, FileTypeNotAllowed, InvalidTransition, NotFound, ValidationFailed
from conversations.models import ONGOING, WRITABLE, Attachment, Conversation, Customer, Message, Sender
from workstreams.models import ChatWidget, Workstream

MAX_ATTACHMENTS = 10


def _checked(workstream: Workstream, upload) -> tuple[str, str]:
    """The file's name and sniffed type, or the contract's error."""
    if upload is None or not hasattr(upload, "read"):
        raise ValidationFailed(_("Send one file as “file” (multipart/form-data)."), fields={"file": _("No file.")})
    if upload.size == 0:
        raise ValidationFailed(_("The file is empty."), fields={"file": _("The file is empty.")})
    if upload.size > workstream.attachment_max_size:
        raise FileTooLarge(
            _("The file is larger than %(size)s.") % {"size": _megabytes(workstream.attachment_max_size)},
            max_size=workstream.attachment_max_size,
        )
    content_type = files.sniff(upload)
    if not workstream.allows_attachment_type(content_type):
        raise FileTypeNotAllowed(
            _("Files of this type (%(type)s) cannot be sent here.") % {"type": content_type},
            content_type=content_type,
        )
    return files.clean_name(getattr(upload, "name", "")), content_type


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.3g} MB"


def _stored(attachment: Attachment, upload, name: str, content_type: str) -> Attachment:
    attachment.name = name
    attachment.size = upload.size
    attachment.content_type = content_type
    attachment.created_at = timezone.now()
    # The storage reads the upload in chunks (a temporary file on disk beyond
    # FILE_UPLOAD_MAX_MEMORY_SIZE): no upload is held in memory whole.
    attachment.file.save(name, upload, save=False)
    try:
        attachment.save(force_insert=True)
    except Exception:
        default_storage.delete(attachment.file.name)
        raise
    return attachment


def customer_attachment_upload(*, widget: ChatWidget, customer: Customer, upload) -> Attachment:
    """A customer's file, for its ongoing conversation in the widget's workstream (or the one
    its next message starts)."""
    workstream = widget.workstream
    name, content_type = _checked(workstream, upload)
    conversation = Conversation.objects.filter(customer=customer, workstream=workstream, status__in=ONGOING).first()
    attachment = Attachment(
        id=uuid.uuid4(), workstream=workstream, conversation=conversation, sender=Sender.CUSTOMER, customer=customer
    )
    return _stored(attachment, upload, name, content_type)


def agent_attachment_upload(*, conversation_id: int, agent: Agent, upload) -> Attachment:
    """An agent's file, for a conversation it holds and may write in."""
    conversation = Conversation.objects.select_related("workstream").filter(pk=conversation_id).first()
    if conversation is None or conversation.agent_id != agent.pk:
        raise NotFound()  # an agent acts only on its own conversations (services.common._check_agent)
    if conversation.status not in WRITABLE:  # where it may write a message, or a note
        raise InvalidTransition()
    name, content_type = _checked(conversation.workstream, upload)
    attachment = Attachment(
        id=uuid.uuid4(),
        workstream_id=conversation.workstream_id,
        conversation=conversation,
        sender=Sender.AGENT,
        agent=agent,
        customer_id=conversation.customer_id,
    )
    return _stored(attachment, upload, name, content_type)


def clean_attachment_ids(value: object) -> list[uuid.UUID]:
    """``"attachments"`` of a message: absent, or a list of at most ``MAX_ATTACHMENTS`` ids."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationFailed(
            _("attachments must be a list of attachment ids"), fields={"attachments": _("Must be a list of ids.")}
        )
    if len(value) > MAX_ATTACHMENTS:
        raise ValidationFailed(
            _("A message carries at most %(count)d attachments.") % {"count": MAX_ATTACHMENTS},
            fields={"attachments": _("At most %(count)d.") % {"count": MAX_ATTACHMENTS}},
        )
    ids: list[uuid.UUID] = []
    for item in value:
        try:
            attachment_id = uuid.UUID(item)
        except ValueError:
            raise NotFound(_("No such attachment.")) from None
        if attachment_id not in ids:
            ids.append(attachment_id)
    return ids


def _claimed(
    conversation: Conversation, ids: list[uuid.UUID], *, customer: Customer | None = None, agent: Agent | None = None
) -> list[dict]:
    """The uploads ``ids`` for a message of this sender in ``conversation`` (locked, in the
    caller's transaction), as the message keeps them, in the order given: each uploaded by this
    sender for this conversation (a customer's before its conversation began: for its
    workstream) and in no message yet; otherwise ``not_found``. ``_attach`` then gives them to
    the message."""
    if not ids:
        return []
    mine = Attachment.objects.select_for_update().filter(pk__in=ids, message__isnull=True)
    if agent is not None:
        mine = mine.filter(sender=Sender.AGENT, agent=agent, conversation_id=conversation.pk)
    else:
        mine = mine.filter(
            Q(conversation__isnull=True) | Q(conversation_id=conversation.pk),
            sender=Sender.CUSTOMER,
            customer=customer,
            workstream_id=conversation.workstream_id,
        )
    found = {attachment.pk: attachment for attachment in mine}
    if len(found) != len(ids):
        raise NotFound(_("No such attachment."))
    return [found[attachment_id].summary() for attachment_id in ids]


def _attach(message: Message) -> None:
    """The message (inserted) takes the uploads it carries (``_claimed``)."""
    if message.attachments:
        ids = [summary["id"] for summary in message.attachments]
        Attachment.objects.filter(pk__in=ids).update(message=message, conversation=message.conversation_id)


def attachments_sweep(*, now=None) -> int:
    """Remove uploads no message took within ``ATTACHMENT_ORPHAN_AGE``: rows and files."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.ATTACHMENT_ORPHAN_AGE)
    removed = 0
    while True:
        with transaction.atomic():
            batch = list(
                Attachment.objects.select_for_update(skip_locked=True)
                .filter(message__isnull=True, created_at__lt=cutoff)
                .order_by("created_at")[:200]
            )
            if not batch:
                return removed
            Attachment.objects.filter(pk__in=[a.pk for a in batch]).delete()
            names = [a.file.name for a in batch]
            transaction.on_commit(lambda names=names: files.delete_files(names))
        removed += len(batch)
