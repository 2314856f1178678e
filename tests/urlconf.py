"""The URL conf walked whole, so tests that must cover every endpoint (CSRF, bad input) cover
the new ones too; and the fixtures that give each URL parameter a real value."""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RoutePattern

from conversations import services
from omnichannel.api import AgentThrottle, WidgetThrottle

__all__ = ["endpoints", "samples", "staff_agent", "unthrottled"]


def _walk(resolver: URLResolver, chain: tuple = ()):
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry, (*chain, entry))
        else:
            yield (*chain, entry)


def _path(chain: tuple, samples: dict[str, str]) -> str:
    """A concrete path through the patterns of ``chain``, with a sample for each parameter."""
    parts = []
    for entry in chain:
        text = str(entry.pattern)
        if isinstance(entry.pattern, RoutePattern):  # path(): <converter:name>
            text = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: samples[m.group(1)], text)
        else:  # re_path(): (?P<name>...)
            text = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: samples[m.group(1)], text)
            text = text.lstrip("^").rstrip("$").replace("\\", "")
        parts.append(text)
    return "/" + "".join(parts)


def endpoints(samples: dict[str, str]) -> list[tuple[str, str, URLPattern]]:
    """(label, path, pattern) for every view of the URL conf."""
    found = []
    for chain in _walk(get_resolver()):
        pattern = chain[-1]
        namespace = ":".join(entry.namespace for entry in chain[:-1] if entry.namespace)
        label = f"{namespace}:{pattern.name}" if namespace else str(pattern.name)
        path = _path(chain, samples)
        assert resolve(path).func == pattern.callback, f"the sample path {path} does not reach {label}"
        found.append((label, path, pattern))
    return found


@pytest.fixture
def staff_agent(alice):
    alice.user.is_staff = alice.user.is_superuser = True
    alice.user.save()
    return alice


@pytest.fixture
def samples(staff_agent, live, customer, persistent) -> dict[str, str]:
    conversation = services.customer_message_send(widget=persistent, customer=customer, body="Hi").conversation
    services.conversation_assign(conversation_id=conversation.pk, agent=staff_agent)
    pk = str(conversation.pk)
    return {
        "pk": pk,
        "conversation_id": pk,
        "object_id": pk,
        "id": pk,
        "content_type_id": "1",
        "app_label": "conversations",
        "widget_key": live.widget_key,
        "action": "end",
        "url": "nowhere/",
        "token": "not-a-signed-token",
    }


@pytest.fixture(autouse=True)
def unthrottled(monkeypatch):
    """Walking every endpoint sends hundreds of calls from one address: lift the REST rate
    limits, and leave no request history in the cache for the tests that come after."""
    from django.core.cache import cache

    monkeypatch.setattr(WidgetThrottle, "rate", "100000/min", raising=False)
    monkeypatch.setattr(AgentThrottle, "rate", "100000/min", raising=False)
    cache.clear()
    yield
    cache.clear()
