"""How an HTTP request runs under ASGI (omnichannel/realtime/http.py, omnichannel/realtime/cache.py): the
middleware and the view in one hop to a thread that later requests reuse, static files
answered on the event loop with the security headers, and one Redis connection pool per
process for the cache."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest
import redis
from asgiref.sync import AsyncToSync, SyncToAsync
from asgiref.testing import ApplicationCommunicator
from django.conf import settings as django_settings
from django.core.cache import caches
from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse
from django.urls import path

from omnichannel.realtime import http
from omnichannel.realtime.http import ASGIHandler

pytestmark = pytest.mark.django_db(transaction=True)

# A view that holds its thread until the test lets it go (ROOT_URLCONF = this module).
held = threading.Event()
held_in: list[threading.Thread] = []


def hold(request: HttpRequest) -> HttpResponse:
    held_in.append(threading.current_thread())
    held.wait(10)
    return HttpResponse("let go")


urlpatterns = [path("hold/", hold), path("quick/", lambda request: HttpResponse("quick"))]


def scope_of(path: str, headers: list | None = None) -> dict:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }


async def get(app, path: str, headers: list | None = None) -> dict:
    """One GET through the ASGI application: status, headers and the whole body."""
    communicator = ApplicationCommunicator(app, scope_of(path, headers))
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(10)
    response = {"status": start["status"], "headers": start.get("headers", []), "body": b""}
    while True:
        chunk = await communicator.receive_output(10)
        response["body"] += chunk.get("body", b"")
        if not chunk.get("more_body"):
            await communicator.wait(10)  # the request is over (request_finished sent)
            return response


def header(response: dict, name: str) -> str | None:
    return next((v.decode() for k, v in response["headers"] if k.decode().lower() == name.lower()), None)


class Hops:
    """Counts the crossings between the event loop and threads during a request."""

    def __init__(self, monkeypatch) -> None:
        self.to_thread = self.to_loop = 0
        to_thread, to_loop = SyncToAsync.__call__, AsyncToSync.__call__

        async def count_to_thread(this, *args, **kwargs):
            self.to_thread += 1
            return await to_thread(this, *args, **kwargs)

        def count_to_loop(this, *args, **kwargs):
            self.to_loop += 1
            return to_loop(this, *args, **kwargs)

        monkeypatch.setattr(SyncToAsync, "__call__", count_to_thread)
        monkeypatch.setattr(AsyncToSync, "__call__", count_to_loop)


@pytest.mark.fast_realtime
async def test_the_middleware_and_the_view_run_in_one_hop_to_a_thread(monkeypatch):
    """Django's own ASGI chain ran each hybrid middleware's process_request and
    process_response in a thread of its own call, and bounced back to the loop at ServeStatic:
    about twenty crossings a request. Now: the request_started and request_finished signals and
    the chain, and nothing goes back to the loop from the thread."""
    app = ASGIHandler()
    await get(app, "/healthz")  # the first request warms up what is made once
    hops = Hops(monkeypatch)
    response = await get(app, "/healthz")
    assert response["status"] == 200
    assert hops.to_loop == 0
    assert hops.to_thread <= 3, hops.to_thread


@pytest.fixture
def request_threads():
    """The thread each request finished in (Django sends request_finished from it)."""
    threads: list[threading.Thread] = []
    request_finished.connect(
        lambda **kwargs: threads.append(threading.current_thread()), weak=False, dispatch_uid=__name__
    )
    yield threads
    request_finished.disconnect(dispatch_uid=__name__)


@pytest.mark.fast_realtime
async def test_requests_one_after_another_reuse_one_thread(request_threads):
    """Django started a thread for every request, and one more to join it afterwards."""
    app = ASGIHandler()
    await get(app, "/healthz")
    started = threading.active_count()
    for _ in range(5):
        assert (await get(app, "/healthz"))["status"] == 200
    assert len(request_threads) == 6
    assert all(thread is request_threads[0] for thread in request_threads)
    assert threading.active_count() == started


@pytest.mark.fast_realtime
async def test_a_thread_still_busy_with_a_request_its_client_left_is_not_reused(settings, request_threads):
    """Django cancels a request whose client disconnects, but its view runs on in the thread:
    the next request must not wait behind it."""
    settings.ROOT_URLCONF = __name__
    app = ASGIHandler()
    held.clear()
    held_in.clear()
    try:
        await get(app, "/quick/")
        left = ApplicationCommunicator(app, scope_of("/hold/"))
        await left.send_input({"type": "http.request", "body": b""})
        while not held_in:
            await asyncio.sleep(0.01)
        await left.send_input({"type": "http.disconnect"})
        await left.wait(5)
        response = await asyncio.wait_for(get(app, "/quick/"), 5)  # not queued behind the held view
        assert response["status"] == 200 and response["body"] == b"quick"
        assert request_threads[-1] is not held_in[0]
    finally:
        held.set()


async def test_a_static_file_is_served_with_the_security_headers(settings):
    settings.SERVESTATIC_USE_FINDERS = True  # the tests have no collected static files
    settings.SERVESTATIC_AUTOREFRESH = True
    response = await get(http.application(), "/static/omnichannel-widget.js")
    assert response["status"] == 200
    assert b"omnichannel" in response["body"].lower()
    assert header(response, "X-Content-Type-Options") == "nosniff"
    assert header(response, "Content-Security-Policy")
    assert header(response, "Access-Control-Allow-Origin") == "*"  # a widget on any site loads it


async def test_static_files_follow_the_nosniff_setting_as_pages_do(settings):
    settings.SERVESTATIC_USE_FINDERS = True
    settings.SERVESTATIC_AUTOREFRESH = True
    settings.SECURE_CONTENT_TYPE_NOSNIFF = False
    response = await get(http.application(), "/static/omnichannel-widget.js")
    assert response["status"] == 200
    assert header(response, "X-Content-Type-Options") is None


async def test_a_page_still_gets_every_middleware(settings):
    """The sync chain still runs sessions, CSRF, clickjacking and CSP on pages."""
    response = await get(http.application(), "/accounts/login/")
    assert response["status"] == 200
    assert header(response, "X-Frame-Options") == "DENY"
    assert header(response, "Content-Security-Policy")
    assert "csrftoken=" in (header(response, "Set-Cookie") or "")


def _connections_received() -> int:
    return int(redis.Redis.from_url(django_settings.REDIS_URL).info("stats")["total_connections_received"])


@pytest.mark.fast_realtime
def test_each_request_context_reuses_the_processs_redis_connections():
    """Under ASGI each request runs in a context of its own, where ``caches`` builds a new
    cache object; each of Django's Redis cache objects opened its own pool, so every throttled
    API call opened a new connection to Redis."""
    cache_get = lambda: caches["default"].get("omnichannel-test-key")  # noqa: E731
    contextvars.Context().run(cache_get)
    before = _connections_received()
    for _ in range(10):
        contextvars.Context().run(cache_get)  # a fresh context, as for each request
    assert _connections_received() - before <= 1


@pytest.mark.fast_realtime
def test_cache_objects_share_their_client():
    assert caches.create_connection("default")._cache is caches.create_connection("default")._cache
