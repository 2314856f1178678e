"""REST plumbing shared by every API view: the error body of docs/protocol.md and throttles."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.db import DatabaseError
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from redis.exceptions import RedisError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import exception_handler as drf_exception_handler

from conversations.errors import BadFrame, DomainError, RequestTooLarge
from omnichannel import ratelimit
from omnichannel.addresses import client_address
from omnichannel.api_auth import CsrfFailed

logger = logging.getLogger(__name__)

_DRF_CODES = {
    CsrfFailed: "csrf_failed",
    exceptions.NotAuthenticated: "authentication_required",
    exceptions.AuthenticationFailed: "invalid_token",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.Throttled: "rate_limited",
    exceptions.ParseError: "bad_frame",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.ValidationError: "validation_error",
}


def error_response(code: str, detail: object, http_status: int, **extra: object) -> Response:
    return Response({"code": code, "detail": detail, **extra}, status=http_status)


@csrf_exempt
def not_found(request: HttpRequest) -> JsonResponse:
    """Any other path under /api/: the error body of docs/protocol.md, never Django's HTML page (and
    no slash-appending redirect, which a POST cannot follow)."""
    return JsonResponse({"code": "not_found", "detail": "No such endpoint. API paths end with a slash."}, status=404)


def exception_handler(exc, context):
    """Every error is ``{"code", "detail"}`` with a stable code (docs/protocol.md); never an HTML
    page, and a database outage is a 503 ``unavailable``, not a 500."""
    # Django's refusals of a request's size, raised where DRF reads the body or the query; left
    # to Django they answered its 400 page in HTML.
    if isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    elif isinstance(exc, TooManyFieldsSent):
        exc = BadFrame("The request has more fields than the server reads.")
    if isinstance(exc, DomainError):
        return error_response(exc.code, exc.detail, exc.status, **exc.extra)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, DatabaseError | RedisError):
        logger.warning("a service is unavailable", exc_info=True)
        return error_response("unavailable", "A service is unavailable; retry later.", 503)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        response.data = {"code": code, "detail": "Invalid input.", "errors": detail}
    else:
        response.data = {"code": code, "detail": str(exc.detail)}
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response.status_code = status.HTTP_401_UNAUTHORIZED
    return response


class FailOpenThrottle(SimpleRateThrottle):
    """DRF's rates (``DEFAULT_THROTTLE_RATES``, "1200/min") and keys, counted by the sliding
    window of ``omnichannel.ratelimit``: one Lua call in Redis per request, and the exact limit
    within any window, as DRF's own throttle.

    Why not DRF's own throttle: docs/decisions.md, "REST throttles count in the sliding window".

    A throttle whose Redis is unreachable lets the call through: during a Redis outage agents
    still work over REST rather than every call failing (seen in the Redis restart fault
    test: a presence change answered 500)."""

    _retry_after: float | None = None

    def get_ident(self, request) -> str:
        """The client's address (omnichannel.addresses), not DRF's: without ``NUM_PROXIES`` DRF
        takes ``X-Forwarded-For`` from anyone, so a client that changed it got a new budget."""
        return client_address(request) or "unknown"

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        try:
            if ratelimit.allow(key, self.num_requests, self.duration):
                return True
            self._retry_after = ratelimit.retry_after(key, self.duration)
        except RedisError:
            logger.warning("throttle %s skipped: its Redis is unreachable", self.scope, exc_info=True)
            return True
        return False

    def wait(self):
        return self._retry_after


class WidgetThrottle(FailOpenThrottle):
    """Anonymous widget calls (config, visitor tokens, customer calls) per client address."""

    scope = "widget"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class AgentThrottle(FailOpenThrottle):
    scope = "agent"

    def get_cache_key(self, request, view):
        ident = request.user.pk if request.user and request.user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
