"""Project-level pages: the start page and the health check. The inbox is in agents/views.py,
the widget's pages in conversations/views.py."""

from __future__ import annotations

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache

from omnichannel.api_auth import CSRF_FAILED_DETAIL
from workstreams.models import ChatWidget


def home(request: HttpRequest) -> HttpResponse:
    widgets = ChatWidget.objects.select_related("workstream").order_by("title")
    return render(request, "home.html", {"widgets": widgets})


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and readiness: the database and Redis answer."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        checks["database"] = "unavailable"
    try:
        cache.set("healthz", "1", 5)
        checks["redis"] = "ok"
    except Exception:  # noqa: BLE001
        checks["redis"] = "unavailable"
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if healthy else "unavailable", **checks}, status=200 if healthy else 503)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form or call without a valid CSRF token (settings.CSRF_FAILURE_VIEW): 403 with the
    stable code ``csrf_failed``, as JSON under /api/, as the inbox's toast for htmx, else a page
    that says what to do."""
    detail = str(CSRF_FAILED_DETAIL)
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "csrf_failed", "detail": detail}, status=403)
    if request.headers.get("HX-Request") == "true":
        error = {"code": "csrf_failed", "detail": detail}
        return HttpResponse(render_to_string("agent/_error.html", {"error": error}, request=request), status=403)
    referer = request.headers.get("Referer", "")
    safe = url_has_allowed_host_and_scheme(referer, {request.get_host()}, require_https=request.is_secure())
    return render(request, "403_csrf.html", {"detail": detail, "back": referer if safe else "/"}, status=403)
