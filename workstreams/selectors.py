"""Read queries of the configuration used in more than one place."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Case, IntegerField, Q, Value, When

from workstreams.default_messages import DEFAULT_MESSAGES
from workstreams.models import AutomatedMessage, Workstream


def automated_message_text(workstream: Workstream, kind: str, language: str, **values: object) -> str:
    """The text of an automated message in ``language``: the workstream's override, else the
    global default, else the default of the site's default language."""
    return automated_message(workstream, kind, language).render(**values)


def automated_message(workstream: Workstream, kind: str, language: str) -> AutomatedMessage:
    """The automated message ``automated_message_text`` renders (one query)."""
    fallback = settings.LANGUAGE_CODE
    candidates = (
        AutomatedMessage.objects.filter(kind=kind, language__in={language, fallback})
        .filter(Q(workstream=workstream) | Q(workstream__isnull=True))
        .annotate(
            rank=Case(
                When(workstream=workstream, language=language, then=Value(0)),
                When(workstream__isnull=True, language=language, then=Value(1)),
                When(workstream=workstream, then=Value(2)),
                default=Value(3),
                output_field=IntegerField(),
            )
        )
        .order_by("rank")
    )
    message = candidates.first()
    if message is None:  # the default row was deleted: use the shipped text
        texts = DEFAULT_MESSAGES.get(kind, {})
        text = texts.get(language) or texts.get(fallback) or kind.replace("_", " ").capitalize() + "."
        message = AutomatedMessage(kind=kind, language=language, text=text)
    return message
