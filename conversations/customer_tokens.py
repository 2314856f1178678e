"""Who the customer is: a verified JWT of the widget's authentication setting, or a visitor
token issued for one widget (anonymous live chat). Used by the REST API and the sockets."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.core import signing

from conversations import services
from conversations.errors import AuthenticationRequired, InvalidToken, NotFound
from conversations.models import Customer
from workstreams import customer_jwt
from workstreams.models import ChatWidget

VISITOR_TOKEN_MAX_AGE = 60 * 60 * 24 * 30  # 30 days
MAX_CONTEXT_BYTES = 8192


def _visitor_salt(widget: ChatWidget) -> str:
    return f"omnichannel.visitor:{widget.widget_key}"


def get_widget(widget_key: str | None = None, *, pk: int | None = None) -> ChatWidget:
    """The widget by its key (or its id), with what the services read of it."""
    lookup = {"widget_key": widget_key} if pk is None else {"pk": pk}
    try:
        return ChatWidget.objects.select_related(
            "workstream__queue__operating_hours", "authentication_setting", "operating_hours"
        ).get(**lookup)
    except (ChatWidget.DoesNotExist, ValueError):
        raise NotFound() from None


def issue_visitor_token(widget: ChatWidget) -> str:
    if widget.authentication_setting_id is not None:
        raise AuthenticationRequired()
    return signing.dumps({"v": uuid.uuid4().hex}, salt=_visitor_salt(widget), compress=False)


def _visitor_id(widget: ChatWidget, token: str) -> str | None:
    try:
        data = signing.loads(token, salt=_visitor_salt(widget), max_age=VISITOR_TOKEN_MAX_AGE)
    except signing.BadSignature:
        return None
    visitor = data.get("v") if isinstance(data, dict) else None
    return visitor if isinstance(visitor, str) and visitor else None


def _clean_claims(claims: dict[str, Any]) -> dict[str, Any]:
    name = claims.get("name")
    email = claims.get("email")
    context = claims.get("context")
    values: dict[str, Any] = {}
    # A claim the database cannot store (a null character) is left out, like a malformed one.
    if isinstance(name, str) and "\x00" not in name:
        values["display_name"] = name.strip()[:255]
    if isinstance(email, str) and "@" in email and len(email) <= 254 and "\x00" not in email:
        values["email"] = email.strip()
    if isinstance(context, dict):
        encoded = json.dumps(context)
        if len(encoded) <= MAX_CONTEXT_BYTES and "\\u0000" not in encoded:
            values["context"] = context
    return values


def authenticate_customer(widget: ChatWidget, token: object) -> Customer:
    """The customer a token stands for in this widget, created on first sight; claims
    ``name``, ``email`` and ``context`` update it. Raises ``InvalidToken`` or
    ``AuthenticationRequired``."""
    return authenticate_customer_until(widget, token)[0]


def authenticate_customer_until(widget: ChatWidget, token: object) -> tuple[Customer, float]:
    """``authenticate_customer``, and until when the token stands (a Unix time): a JWT's
    ``exp`` with the leeway ``auth`` allows, a visitor token's issue time plus its maximum age.
    A socket that was not given a fresh token by then is closed (conversations.consumers)."""
    if not isinstance(token, str) or not token:
        raise AuthenticationRequired()
    setting = widget.authentication_setting
    if setting is None:
        visitor = _visitor_id(widget, token)
        if visitor is None:
            raise InvalidToken()
        customer = services.customer_upsert(widget=widget, external_id=visitor)
        return customer, _visitor_token_issued(token) + VISITOR_TOKEN_MAX_AGE
    if _visitor_id(widget, token) is not None:
        raise AuthenticationRequired()
    try:
        claims = customer_jwt.verify_customer_token(setting, token)
    except customer_jwt.InvalidToken:
        raise InvalidToken() from None
    customer = services.customer_upsert(setting=setting, external_id=claims["sub"], **_clean_claims(claims))
    return customer, float(claims["exp"]) + customer_jwt.LEEWAY.total_seconds()


def _visitor_token_issued(token: str) -> float:
    """The issue time of a visitor token whose signature was verified: the timestamp that
    ``signing.dumps`` put before the signature."""
    return float(signing.b62_decode(token.rsplit(signing.Signer().sep, 2)[1]))
