"""The response to a locked-out sign-in (django-axes, settings: AXES_*): a clear page, in the
user's language, with status 429 and ``Retry-After``; never a 500 or a bare string."""

from __future__ import annotations

import math

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    cooloff = settings.AXES_COOLOFF_TIME
    minutes = max(1, math.ceil(cooloff.total_seconds() / 60))
    response = render(
        request,
        "registration/locked_out.html",
        {"minutes": minutes, "admin": request.path.startswith("/admin/")},
        status=429,
    )
    response["Retry-After"] = str(int(cooloff.total_seconds()))
    return response
