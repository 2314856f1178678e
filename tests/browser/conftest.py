"""Browser tests: Debian's Chromium driven by Playwright against a real ASGI server (uvicorn
in a thread of the test process, so it shares the test database), with the Redis channel
layer. They skip, saying why, where Chromium is not installed; CI installs it."""

from __future__ import annotations

import shutil

import pytest

from tests.cast import (  # noqa: F401 - fixtures
    alice,
    bob,
    broadcasts,
    commit,
    customer,
    eager_celery,
    live,
    other_customer,
    persistent,
    queue,
    visitor,
)
from tests.servers import free_port, uvicorn_in_thread

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]


def pytest_collection_modifyitems(config, items):
    if shutil.which("chromium") is None:
        skip = pytest.mark.skip(reason="Chromium is not installed (apt-get install chromium); CI installs it")
        for item in items:
            if "tests/browser/" in str(item.fspath):
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _allow_orm_beside_playwright(monkeypatch):
    """Playwright's sync API keeps an event loop on the test thread; the test's own ORM calls
    (factories, assertions, the database flush) are still plain synchronous code. Django's
    documented escape hatch, for browser tests only."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def live_url(transactional_db, settings):
    """A uvicorn server running omnichannel.asgi in a thread; yields its base URL."""
    from channels.routing import ProtocolTypeRouter
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    import omnichannel.asgi

    # Static files from the finders, as in development (the app object was built with the
    # test settings' DEBUG off, so ServeStatic would only look at collected files).
    application = ProtocolTypeRouter(
        {
            "http": ASGIStaticFilesHandler(omnichannel.asgi.django_asgi_app),
            "websocket": omnichannel.asgi.application.application_mapping["websocket"],
        }
    )

    port = free_port()
    settings.SITE_URL = f"http://127.0.0.1:{port}"
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
    with uvicorn_in_thread(application, port):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session", autouse=True)
def _close_server_connections_at_the_end(django_db_setup, django_db_blocker):
    """Once, after the last test: the servers' worker threads kept database connections, and
    PostgreSQL refuses to drop the test database while they live. (Per test it would also
    cut the test's own connection.)"""
    yield
    with django_db_blocker.unblock():
        _close_other_connections()


def _close_other_connections() -> None:
    """The server's worker threads kept database connections; PostgreSQL would refuse to drop
    the test database while they live."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture
def chromium():
    """Per test: Playwright's sync API runs an event loop on this thread while it is started,
    which must not outlive the test (other tests' ORM calls would see a running loop)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(chromium):
    """``new_page(width=1280, height=800, locale="en-US")``: a page in a fresh context."""
    contexts = []

    def make(width: int = 1280, height: int = 800, locale: str = "en-US"):
        context = chromium.new_context(viewport={"width": width, "height": height}, locale=locale)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        _log_page_troubles(page)
        return page

    yield make
    for context in contexts:
        context.close()


def _log_page_troubles(page) -> None:
    """What the page said and what it was refused (console, script errors, HTTP answers of 400
    and up, socket closes), printed as it happens: a failing test's report shows them."""

    def on_response(response):
        if response.status >= 400:
            print(f"[http {response.status}] {response.request.method} {response.url}")

    def on_socket(ws):
        print(f"[ws open] {ws.url}")
        ws.on("framereceived", lambda payload: '"error"' in str(payload) and print(f"[ws error] {payload}"))
        ws.on("close", lambda _ws: print(f"[ws close] {ws.url}"))

    page.on("console", lambda message: print(f"[console {message.type}] {message.text}"))
    page.on("pageerror", lambda error: print(f"[page error] {error}"))
    page.on("response", on_response)
    page.on("websocket", on_socket)
