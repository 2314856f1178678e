"""What an agent socket authenticated with, as a name that carries no secret: the socket keeps
it, and the end of that access is announced under it (conversations.events.publish_access_revoked,
agents.signals). A session key or an API token is never sent through the channel layer."""

from __future__ import annotations

import hashlib


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:32]


def session_credential(session_key: str | None) -> list | None:
    return ["session", _digest(session_key)] if session_key else None


def token_credential(token) -> list:
    """An ``agents.ApiToken`` by its id (only its key is secret, and only its digest is kept)."""
    return ["token", token.pk]
