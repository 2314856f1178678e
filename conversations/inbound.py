"""Reading a reply by email (docs/email.md): the raw RFC 5322 message an inbound-mail service or a
local MTA posts to /api/v1/inbound-email/, turned into what the engine needs (the reply token,
the sender, the ``Message-ID``, the new text) or a reason to reject it. Nothing here writes.

The message is parsed by the standard library's ``email`` package (``policy.default``); the new
text is what mail-parser-reply keeps of the plain-text part once quoted history, reply headers
("On … wrote:", in English and Danish), signatures and disclaimers are gone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.errors import HeaderParseError, MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser

from mailparser_reply import EmailReplyParser

from conversations.emails import ReplyTo, reply_token_read

# Reasons of a rejected mail (docs/protocol.md, "Email"): stable codes, one per failure.
TOO_LARGE = "too_large"
MALFORMED = "malformed"
UNKNOWN_RECIPIENT = "unknown_recipient"
INVALID_TOKEN = "invalid_token"
SENDER_MISMATCH = "sender_mismatch"
HTML_ONLY = "html_only"
UNSUPPORTED_CHARSET = "unsupported_charset"
EMPTY = "empty"
BODY_TOO_LONG = "body_too_long"
AUTO_REPLY = "auto_reply"

_REPLY_LOCAL = re.compile(r"^reply\+(?P<token>[^@]+)$", re.IGNORECASE)
_UTF8 = {"utf-8", "utf8", "us-ascii", "ascii"}
_REPLY_PARSER = EmailReplyParser(languages=["en", "da"])


class Rejected(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class Reply:
    to: ReplyTo
    sender: str
    message_id: str
    text: str


def _addresses(message: EmailMessage, *names: str) -> list[Address]:
    found: list[Address] = []
    for name in names:
        for header in message.get_all(name, []):
            found.extend(getattr(header, "addresses", ()))
    return found


def _token(message: EmailMessage, domain: str) -> str:
    """The token of the first ``reply+<token>@<domain>`` among the recipients (To, Cc, and the
    envelope's Delivered-To/X-Original-To that MTAs add)."""
    for address in _addresses(message, "to", "cc", "delivered-to", "x-original-to"):
        match = _REPLY_LOCAL.match(address.username or "")
        if match and address.domain.lower() == domain.lower():
            return match["token"]
    raise Rejected(UNKNOWN_RECIPIENT)


def _plain_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        raise Rejected(HTML_ONLY if message.get_body(preferencelist=("html",)) is not None else EMPTY)
    charset = (part.get_content_charset() or "us-ascii").lower()
    if charset not in _UTF8:
        raise Rejected(UNSUPPORTED_CHARSET)
    try:
        return part.get_payload(decode=True).decode("utf-8")
    except (UnicodeDecodeError, AttributeError):
        raise Rejected(UNSUPPORTED_CHARSET) from None


def new_text(text: str) -> str:
    """What the customer wrote in this reply: no quoted history, reply header or signature."""
    text = text.replace("\r\n", "\n")
    read = _REPLY_PARSER.read(text)
    latest = read.replies[0].body if read.replies else text
    return latest.strip()


def read(raw: bytes, *, domain: str, max_bytes: int, max_body: int) -> Reply:
    """The reply in ``raw``, or ``Rejected`` with its reason."""
    if len(raw) > max_bytes:
        raise Rejected(TOO_LARGE)
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
        if message.defects and not message.keys():
            raise Rejected(MALFORMED)
        senders = _addresses(message, "from")
        message_id = str(message.get("message-id", "")).strip()
        if len(senders) != 1 or not senders[0].username or not senders[0].domain or not message_id:
            raise Rejected(MALFORMED)
        auto = str(message.get("auto-submitted", "no")).strip().lower()
        token = _token(message, domain)
        if auto != "no":  # an out-of-office or a bounce must not answer an agent (RFC 3834)
            raise Rejected(AUTO_REPLY)
        text = _plain_text(message)
    except Rejected:
        raise
    except (MessageError, HeaderParseError, ValueError, TypeError, IndexError, LookupError):
        raise Rejected(MALFORMED) from None
    to = reply_token_read(token)
    if to is None:
        raise Rejected(INVALID_TOKEN)
    if "\x00" in text:
        raise Rejected(MALFORMED)
    body = new_text(text)
    if not body:
        raise Rejected(EMPTY)
    if len(body) > max_body:
        raise Rejected(BODY_TOO_LONG)
    return Reply(to=to, sender=senders[0].addr_spec, message_id=message_id, text=body)
