"""Labels: the contact reasons an agent or a supervisor sets on a conversation (docs/protocol.md,
"Labels"). A conversation's labels are told to agent-side clients only, in the agent-facing
conversation object; the customer never sees them."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from conversations import events
from conversations.errors import NotFound, ValidationFailed
from conversations.models import Conversation, Label
from conversations.selectors import readable_by
from conversations.services.common import _locked

MAX_LABELS = 20  # on one conversation


def clean_label_names(labels: object) -> list[str]:
    """The names of a ``labels`` list, trimmed, each once, in the given order."""
    if not isinstance(labels, list) or not all(isinstance(name, str) for name in labels):
        raise ValidationFailed(_("labels must be a list of label names."), fields={"labels": _("Not a list of names.")})
    names = list(dict.fromkeys(name.strip() for name in labels))
    if len(names) > MAX_LABELS:
        message = _("At most %(max)d labels.") % {"max": MAX_LABELS}
        raise ValidationFailed(message, fields={"labels": message})
    return names


def conversation_labels_set(*, conversation_id: int, user, labels: object) -> Conversation:
    """The conversation's labels become exactly ``labels`` (names of labels defined in the
    admin). ``user`` is an agent's or a supervisor's user: any conversation it may read
    (``readable_by``), else not_found; an unknown name is validation_error and changes nothing."""
    names = clean_label_names(labels)
    with transaction.atomic():
        if not Conversation.objects.filter(readable_by(user), pk=conversation_id).exists():
            raise NotFound()
        conversation = _locked(conversation_id)
        found = {label.name: label for label in Label.objects.filter(name__in=names)}
        unknown = [name for name in names if name not in found]
        if unknown:
            message = _("No such label: %(names)s.") % {"names": ", ".join(unknown)}
            raise ValidationFailed(message, fields={"labels": message})
        conversation.labels.set([found[name] for name in names])
        events.publish_conversation(conversation, to_customer=False)
    return conversation
