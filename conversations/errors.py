"""Typed domain errors of the conversation engine. Every interface (REST, WebSocket,
inbox, admin) maps them to the same ``code`` and HTTP status (docs/protocol.md)."""

from __future__ import annotations

from datetime import datetime

from django.utils.translation import gettext_lazy as _


class DomainError(Exception):
    code = "error"
    status = 400
    default_detail = _("The request could not be carried out.")

    def __init__(self, detail: str | None = None, **extra: object) -> None:
        self.detail = str(detail or self.default_detail)
        self.extra = extra
        super().__init__(self.detail)


class NotFound(DomainError):
    code, status = "not_found", 404
    default_detail = _("Not found.")


class Forbidden(DomainError):
    code, status = "forbidden", 403
    default_detail = _("You may not do that.")


class InvalidTransition(DomainError):
    code, status = "invalid_transition", 409
    default_detail = _("The conversation is not in a state that allows this.")


class CustomerCannotEnd(DomainError):
    code, status = "customer_cannot_end", 403
    default_detail = _("Only an agent can end a persistent conversation.")


class OutsideOperatingHours(DomainError):
    code, status = "outside_operating_hours", 409
    default_detail = _("We are closed right now.")

    def __init__(self, next_opening: datetime | None, detail: str | None = None) -> None:
        super().__init__(detail, next_opening=next_opening.isoformat() if next_opening else None)
        self.next_opening = next_opening


class BodyEmpty(DomainError):
    code, status = "body_empty", 400
    default_detail = _("The message is empty.")


class BodyTooLong(DomainError):
    code, status = "body_too_long", 413
    default_detail = _("The message is longer than 4,000 characters.")


class RequestTooLarge(DomainError):
    """An addition to the protocol (docs/protocol.md): a REST body over the server's limit (Django's
    ``DATA_UPLOAD_MAX_MEMORY_SIZE``, 2.5 MB), whatever it holds."""

    code, status = "request_too_large", 413
    default_detail = _("The request is larger than the server accepts.")


class ValidationFailed(DomainError):
    code, status = "validation_error", 400
    default_detail = _("Invalid input.")


class AlreadyRated(DomainError):
    """The satisfaction survey of a conversation is answered once (docs/protocol.md)."""

    code, status = "already_rated", 409
    default_detail = _("You have already rated this conversation.")


class FileTooLarge(DomainError):
    """An attachment larger than its workstream allows (or than any workstream may)."""

    code, status = "file_too_large", 413
    default_detail = _("The file is too large.")


class FileTypeNotAllowed(DomainError):
    """An attachment whose bytes are of a type its workstream does not allow."""

    code, status = "file_type_not_allowed", 415
    default_detail = _("Files of this type cannot be sent here.")


class AgentUnavailable(DomainError):
    """An addition to the protocol (docs/protocol.md): the target agent of a transfer or pick cannot take it."""

    code, status = "agent_unavailable", 409
    default_detail = _("That agent cannot take this conversation now.")


class InvalidToken(DomainError):
    code, status = "invalid_token", 401
    default_detail = _("The token is not valid.")


class AuthenticationRequired(DomainError):
    code, status = "authentication_required", 401
    default_detail = _("This widget needs a token signed by its website.")


class OriginNotAllowed(DomainError):
    code, status = "origin_not_allowed", 403
    default_detail = _("This origin may not use the widget.")


class RateLimited(DomainError):
    code, status = "rate_limited", 429
    default_detail = _("Too many requests; slow down.")


class BadFrame(DomainError):
    code, status = "bad_frame", 400
    default_detail = _("The frame is not valid.")


class Unavailable(DomainError):
    code, status = "unavailable", 503
    default_detail = _("A service is unavailable; retry later.")


class ConversationsOngoing(DomainError):
    """An addition to the protocol, docs/protocol.md (admin and management commands only): a customer with a
    conversation that is not closed yet cannot be erased unless it is closed first."""

    code, status = "conversation_ongoing", 409
    default_detail = _(
        "The customer has conversations that are not closed yet. Close them first, or ask for them to be closed."
    )


class SenderMismatch(DomainError):
    """An addition to the protocol (docs/email.md): a reply by email whose ``From`` is not the
    address of the customer its reply token names."""

    code, status = "sender_mismatch", 403
    default_detail = _("The sender is not the customer of this conversation.")
