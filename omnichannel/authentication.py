"""DRF authentication for the inbox's session-authenticated API calls. Its own module: DRF
imports the authentication classes while ``rest_framework.views`` loads, so nothing here may
import it (omnichannel/api.py does)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions


class CsrfFailed(exceptions.PermissionDenied):
    """A session-authenticated call without a valid CSRF token (addition to PROTOCOL.md)."""

    default_code = "csrf_failed"


class SessionAuthentication(authentication.SessionAuthentication):
    """DRF's, with the CSRF refusal as its own stable code ``csrf_failed`` instead of a plain
    ``forbidden``: the client knows to fetch a fresh token (reload) rather than give up."""

    def enforce_csrf(self, request):
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied as error:
            raise CsrfFailed(CSRF_FAILED_DETAIL) from error


CSRF_FAILED_DETAIL = _("Your session has expired or the page is out of date. Reload the page and try again.")
