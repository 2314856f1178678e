"""What a file is and how a client may fetch it: the type from its bytes (libmagic, through
python-magic), a safe name, and signed, short-lived URLs (docs/protocol.md, "Attachments").

A URL is ``/files/<token>/``: the token is the attachment's id signed with the project's secret
and a time stamp (``django.core.signing``), valid ``ATTACHMENT_URL_MAX_AGE`` seconds; it needs no
other credential, so an ``<img>`` in the widget or a link in the inbox works as it is.
"""

from __future__ import annotations

import base64
import logging
import unicodedata
import uuid
from typing import IO

import magic
from django.conf import settings
from django.core import signing
from django.core.files.storage import default_storage
from django.urls import reverse

# How much of a file libmagic reads to decide (an office document needs its zip directory).
SNIFF_BYTES = 64 * 1024
# Images a browser shows inline: never SVG (it can carry script), whatever a workstream allows.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
MAX_NAME = 200
_SALT = "omnichannel.attachment-url"

logger = logging.getLogger(__name__)


def sniff(file: IO[bytes]) -> str:
    """The media type of ``file`` from its first bytes (its name and the client's header do not
    count); the file is read from its start and left there."""
    file.seek(0)
    head = file.read(SNIFF_BYTES)
    file.seek(0)
    return magic.from_buffer(head, mime=True).lower()


def clean_name(name: object) -> str:
    """A file name to show and to offer for download: its last path part, without control or
    format characters, at most ``MAX_NAME`` characters (the extension kept)."""
    name = str(name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if unicodedata.category(ch)[0] != "C").strip()
    name = name.strip(". ") or "file"
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        ext = ext[:20] if dot and stem else ""
        name = name[: MAX_NAME - len(ext) - 1].rstrip() + ("." + ext if ext else "")
    return name


def signed_url(attachment_id: str | uuid.UUID) -> str:
    token = signing.TimestampSigner(salt=_SALT).sign(str(attachment_id))
    return reverse("attachment-file", args=[token])


def unsign(token: str) -> uuid.UUID | None:
    """The attachment id of a token that is genuine and not expired, else None."""
    try:
        value = signing.TimestampSigner(salt=_SALT).unsign(token, max_age=settings.ATTACHMENT_URL_MAX_AGE)
        return uuid.UUID(value)
    except (signing.BadSignature, ValueError):
        return None


def attachment_object(summary: dict) -> dict:
    """An attachment as clients see it: what the message keeps, with a fresh signed URL."""
    return {**summary, "url": signed_url(summary["id"])}


def delete_files(names: list[str]) -> None:
    """Delete stored files (after their rows are gone); one that fails is logged, not raised: a
    file left behind is found by its name, a row left behind would point at nothing."""
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:
            logger.warning("could not delete the stored file %s", name, exc_info=True)


def content_base64(name: str) -> str | None:
    """A stored file's bytes in base64 (a privacy export), or None when it is gone."""
    try:
        with default_storage.open(name, "rb") as handle:
            return base64.b64encode(handle.read()).decode("ascii")
    except (FileNotFoundError, OSError):
        return None
