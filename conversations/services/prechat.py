"""The pre-chat form: the answers a conversation starts with (docs/protocol.md, "Pre-chat form").

``clean_prechat`` checks them against the workstream's questions (workstreams.PrechatField);
``_fill_customer`` gives an anonymous visitor the name and email it answered."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext as _

from conversations.errors import ValidationFailed
from conversations.models import Customer
from workstreams.models import PRECHAT_MAX_LENGTH, PrechatField, PrechatFieldType


def clean_prechat(questions: list[PrechatField], answers: object) -> dict[str, str]:
    """The answers to ``questions``, trimmed, in the questions' order (unanswered optional ones
    left out). Anything else is ``validation_error`` with ``fields``: a missing required answer,
    an answer of the wrong type or length, an address that is not one, a choice not offered, a
    name no question has. ``answers``: an object of strings, or nothing."""
    if answers is None:
        answers = {}
    if not isinstance(answers, dict):
        message = _("prechat must be an object of answers.")
        raise ValidationFailed(message, fields={"prechat": message})
    by_name = {question.name: question for question in questions}
    errors = {name: _("This form has no such question.") for name in answers if name not in by_name}
    cleaned: dict[str, str] = {}
    for question in questions:
        value = answers.get(question.name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if question.required:
                errors[question.name] = _("This question needs an answer.")
            continue
        error = _answer_error(question, value)
        if error:
            errors[question.name] = error
        else:
            cleaned[question.name] = value.strip()
    if errors:
        raise ValidationFailed(_("Some answers of the form are missing or not valid."), fields=errors)
    return cleaned


def _answer_error(question: PrechatField, value: object) -> str | None:
    if not isinstance(value, str) or "\x00" in value:
        return _("The answer must be text.")
    value = value.strip()
    longest = PRECHAT_MAX_LENGTH[question.type]
    if len(value) > longest:
        return _("The answer is longer than %(max)d characters.") % {"max": longest}
    if question.type == PrechatFieldType.EMAIL:
        try:
            validate_email(value)
        except ValidationError:
            return _("Enter a valid email address.")
    if question.type == PrechatFieldType.CHOICE and value not in question.choice_list:
        return _("Choose one of the answers offered.")
    return None


def _fill_customer(customer: Customer, answers: dict[str, str]) -> None:
    """Answers named ``name`` and ``email`` become the customer's name and email: an anonymous
    visitor's always, a signed-in customer's only where its website's token gave none."""
    changed = []
    for answer, attname in (("name", "display_name"), ("email", "email")):
        value = answers.get(answer)
        if value and (not customer.authenticated or not getattr(customer, attname)):
            if getattr(customer, attname) != value[: Customer._meta.get_field(attname).max_length]:
                setattr(customer, attname, value[: Customer._meta.get_field(attname).max_length])
                changed.append(attname)
    if changed:
        customer.save(update_fields=changed)
