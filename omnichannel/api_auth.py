"""DRF authentication: the inbox's session-authenticated API calls, and API tokens. Its own module: DRF
imports the authentication classes while ``rest_framework.views`` loads, so nothing here may
import it (omnichannel/api.py does)."""

from __future__ import annotations

from functools import lru_cache

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from omnichannel import rows


class CsrfFailed(exceptions.PermissionDenied):
    """A session-authenticated call without a valid CSRF token (an addition to the protocol, docs/protocol.md)."""

    default_code = "csrf_failed"


class SessionAuthentication(authentication.SessionAuthentication):
    """DRF's, with the CSRF refusal as its own stable code ``csrf_failed`` instead of a plain
    ``forbidden``: the client knows to fetch a fresh token (reload) rather than give up."""

    def enforce_csrf(self, request):
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied as error:
            raise CsrfFailed(CSRF_FAILED_DETAIL) from error


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's header, ``Authorization: Token <key>``, looked up among ``agents.ApiToken``s by the
    key's digest (the database holds no key), in one statement written out once instead of
    compiled by the ORM on every request: it runs before every agent API call.
    ``request.auth`` is the ApiToken."""

    def authenticate_credentials(self, key):
        token = token_with_user(key)
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return token.user, token


def token_with_user(key: str):
    """The ``agents.ApiToken`` of ``key``, with its user loaded (``select_related("user")``), or
    None: one query on the unique index of the digest. The digest is of a key of 256 random
    bits, so comparing it in SQL gives nothing away (no timing-safe compare needed, and
    no salt: nobody can list keys by their digests)."""
    # Not at the top: DRF imports this module while settings load, before the apps' models can.
    from agents.models import ApiToken, key_digest

    if not key.isascii():  # keys are ASCII; a lone surrogate cannot even be hashed
        return None
    with connection.cursor() as cursor:
        cursor.execute(_token_sql(connection.vendor), [key_digest(key)])
        row = cursor.fetchone()
    if row is None:
        return None
    token = rows.instance(ApiToken, row)
    token.user = rows.instance(get_user_model(), row, len(ApiToken._meta.concrete_fields))
    return token


@lru_cache(maxsize=8)
def _token_sql(vendor: str) -> str:
    from agents.models import ApiToken  # not at the top: see token_with_user

    user = get_user_model()
    quote = connection.ops.quote_name
    token_table, user_table = quote(ApiToken._meta.db_table), quote(user._meta.db_table)
    user_id = quote(ApiToken._meta.get_field("user").column)
    digest = quote(ApiToken._meta.get_field("digest").column)
    return (
        f"SELECT {rows.columns(vendor, ApiToken).sql}, {rows.columns(vendor, user).sql} "  # noqa: S608 - model names
        f"FROM {token_table} INNER JOIN {user_table} ON {user_table}.{quote(user._meta.pk.column)} = "
        f"{token_table}.{user_id} WHERE {token_table}.{digest} = %s"
    )


CSRF_FAILED_DETAIL = _("Your session has expired or the page is out of date. Reload the page and try again.")
