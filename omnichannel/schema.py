"""OpenAPI (drf-spectacular) extensions for Omnichannel's own API classes; loaded by
OmnichannelConfig.ready()."""

from __future__ import annotations

from drf_spectacular.authentication import SessionScheme


class CsrfSessionScheme(SessionScheme):
    """Our SessionAuthentication (a stable ``csrf_failed`` code) is documented as DRF's is."""

    target_class = "omnichannel.api_auth.SessionAuthentication"
