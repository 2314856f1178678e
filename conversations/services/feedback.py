"""What customers tell about a conversation: the satisfaction survey (CSAT).

A conversation asks once (``common._save``: a live chat that ended, a persistent conversation
that closed, where the workstream asks and an agent took part); its customer answers once, within
``CSAT_WINDOW`` of the question."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from conversations import events
from conversations.errors import AlreadyRated, NotFound, ValidationFailed
from conversations.models import Conversation, Customer
from omnichannel import rows
from workstreams.models import ChatWidget

CSAT_WINDOW = timedelta(days=7)
MAX_CSAT_COMMENT = 2000


def _clean_rating(rating: object) -> int:
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        message = _("A rating is a whole number from 1 to 5.")
        raise ValidationFailed(message, fields={"rating": message})
    return rating


def _clean_comment(comment: object) -> str:
    if comment is None:
        return ""
    if not isinstance(comment, str) or len(comment) > MAX_CSAT_COMMENT or "\x00" in comment:
        message = _("A comment is text of at most %(max)d characters.") % {"max": MAX_CSAT_COMMENT}
        raise ValidationFailed(message, fields={"comment": message})
    return comment.strip()


def customer_csat_submit(
    *, widget: ChatWidget, customer: Customer, conversation_id: object, rating: object, comment: object = None
) -> Conversation:
    """The customer rates its conversation (of the widget's workstream) that asked for it within
    the last 7 days; any other conversation is ``not_found``, a second answer ``already_rated``.
    Agents and supervisors see it at once (the agent-facing conversation frame)."""
    rating = _clean_rating(rating)
    comment = _clean_comment(comment)
    if isinstance(conversation_id, bool) or not isinstance(conversation_id, int):
        message = _("conversation_id must be the id of your conversation.")
        raise ValidationFailed(message, fields={"conversation_id": message})
    now = timezone.now()
    with transaction.atomic():
        conversation = (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("workstream", "queue", "customer", "agent__user")
            .filter(pk=conversation_id, customer=customer, workstream_id=widget.workstream_id)
            .first()
            if 0 < conversation_id <= rows.MAX_ID
            else None
        )
        asked = conversation.csat_requested_at if conversation is not None else None
        if asked is None or asked < now - CSAT_WINDOW:
            raise NotFound()
        if conversation.csat_submitted_at is not None:
            raise AlreadyRated()
        conversation.csat_rating = rating
        conversation.csat_comment = comment
        conversation.csat_submitted_at = now
        conversation.save(update_fields=["csat_rating", "csat_comment", "csat_submitted_at"])
        events.publish_conversation(conversation, to_customer=False)
    return conversation
