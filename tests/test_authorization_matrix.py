"""The authorization matrix: every URL pattern of the project × every role → allowed,
unauthenticated, forbidden or not_found, and a role never sees a secret it is not entitled to.

The list of endpoints comes from the URL conf (``django.urls.get_resolver``): a pattern without
a row in MATRIX fails ``test_every_url_pattern_has_a_row_in_the_matrix``, so a new endpoint
cannot escape the matrix. Admin pages are generated too: each one is refused to everyone but
staff. The WebSocket half is tests/realtime/test_authorization_matrix.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse

from tests import files
from tests.authorization import (
    ACTORS,
    AGENT,
    ANONYMOUS,
    CUSTOMER_A,
    CUSTOMER_B,
    CUSTOMERS,
    FORBIDDEN,
    NOT_FOUND,
    OK,
    OTHER_AGENT,
    READERS,
    ROLES,
    STAFF,
    SUPERUSER,
    TARGETS,
    UNAUTHENTICATED,
    VISITOR,
    World,
    build_world,
    leaks,
)

pytestmark = pytest.mark.django_db

LOGIN_PATHS = ("/accounts/login/", "/admin/login/")


def every(outcome: str, **overrides: str) -> dict[str, str]:
    return {**dict.fromkeys(ROLES, outcome), **overrides}


PUBLIC = every(OK)
PERSISTENT_CUSTOMERS = every(UNAUTHENTICATED, customer_a=OK, customer_b=OK)
LIVE_VISITORS = every(UNAUTHENTICATED, visitor=OK)
AGENTS = every(UNAUTHENTICATED, agent=OK, other_agent=OK, staff=FORBIDDEN, superuser=FORBIDDEN)
# Customer A's conversation, assigned to AGENT: other agents do not know it exists.
READ_CONVERSATION = every(UNAUTHENTICATED, agent=OK, other_agent=NOT_FOUND, staff=OK, superuser=OK)
ACT_ON_CONVERSATION = every(UNAUTHENTICATED, agent=OK, other_agent=NOT_FOUND, staff=FORBIDDEN, superuser=FORBIDDEN)
SUPERVISORS = every(UNAUTHENTICATED, agent=FORBIDDEN, other_agent=FORBIDDEN, staff=OK, superuser=OK)


@dataclass(frozen=True)
class Probe:
    method: str
    expect: dict[str, str]
    widget: str = "persistent"
    action: str | None = None
    data: Callable[[World], dict] | None = None
    htmx: bool = False
    label: str = ""
    target: str = "a"  # the conversation a conversation URL names (tests.authorization.TARGETS)
    reads: bool = False  # a POST that only reads the conversation (a transcript): readers may
    multipart: bool = False  # an upload: the data is sent as multipart/form-data


def body(world: World) -> dict:
    return {"client_id": "matrix-1", "body": "Hello from the matrix"}


def offline_message(world: World) -> dict:
    return {"name": "Matrix", "email": "matrix@example.com", "body": "Call me back"}


def rating(world: World) -> dict:
    return {"conversation_id": world.conversation.pk, "rating": 5}


def a_file(world: World) -> dict:
    return {"file": SimpleUploadedFile("matrix.pdf", files.PDF)}


def to_other_queue(world: World) -> dict:
    return {"queue_id": world.other_queue.pk}


def target_other_queue(world: World) -> dict:
    return {"target": f"queue:{world.other_queue.pk}", "notes": "done"}


def target_agent(world: World) -> dict:
    return {"target": f"agent:{world.agents[AGENT].pk}"}


def widget_probes(method: str, persistent: dict, live: dict, data=None) -> list[Probe]:
    return [
        Probe(method, persistent, widget="persistent", data=data, label="persistent"),
        Probe(method, live, widget="live", data=data, label="live"),
    ]


W = "api/v1/widget/<slug:widget_key>/"
C = "api/v1/agent/conversations/<int:conversation_id>/"
P = "agent/conversations/<int:pk>/"

MATRIX: dict[str, list[Probe]] = {
    "": [Probe("get", PUBLIC)],
    "healthz": [Probe("get", PUBLIC)],
    "i18n/setlang/": [Probe("post", PUBLIC, data=lambda w: {"language": "da", "next": "/"})],
    "accounts/login/": [Probe("get", PUBLIC)],
    # Everyone may log out, and ends on the login page.
    "accounts/logout/": [Probe("post", every(UNAUTHENTICATED))],
    # The public contract: the schema and its browsable docs.
    "api/schema/": [Probe("get", PUBLIC)],
    "api/docs/": [Probe("get", PUBLIC)],
    # --- The widget's REST API: the bearer token names the customer; no ids in the paths.
    W: widget_probes("get", PUBLIC, PUBLIC),
    W + "visitor/": widget_probes("post", every(UNAUTHENTICATED), PUBLIC),
    W + "conversation/": widget_probes("get", PERSISTENT_CUSTOMERS, LIVE_VISITORS),
    W + "conversation/messages/": [
        *widget_probes("get", PERSISTENT_CUSTOMERS, LIVE_VISITORS),
        *widget_probes("post", PERSISTENT_CUSTOMERS, LIVE_VISITORS, data=body),
    ],
    # Persistent: A may ask (customer_cannot_end), B has nothing to end.
    W + "conversation/end/": widget_probes("post", {**PERSISTENT_CUSTOMERS, CUSTOMER_B: NOT_FOUND}, LIVE_VISITORS),
    # The customer's own conversation only, to the customer's own address; B has none.
    W + "conversation/transcript/": widget_probes(
        "post", {**PERSISTENT_CUSTOMERS, CUSTOMER_B: NOT_FOUND}, LIVE_VISITORS
    ),
    # The offline form: a customer of a signed-in widget; on an anonymous one anybody without a
    # token (a token of another widget is refused).
    W + "offline-message/": widget_probes(
        "post",
        PERSISTENT_CUSTOMERS,
        every(OK, customer_a=UNAUTHENTICATED, customer_b=UNAUTHENTICATED),
        data=offline_message,
    ),
    # The survey of customer A's conversation: still ongoing, never asked, so nobody may answer.
    W + "csat/": widget_probes(
        "post",
        every(UNAUTHENTICATED, customer_a=NOT_FOUND, customer_b=NOT_FOUND),
        every(UNAUTHENTICATED, visitor=NOT_FOUND),
        data=rating,
    ),
    # An upload belongs to the customer who sends it (its id is useless to anyone else).
    W + "conversation/attachments/": [
        replace(probe, multipart=True)
        for probe in widget_probes("post", PERSISTENT_CUSTOMERS, LIVE_VISITORS, data=a_file)
    ],
    # Only the inbound-mail service holds INBOUND_EMAIL_SECRET; unset (here), there is no endpoint.
    "api/v1/inbound-email/": [Probe("post", every(NOT_FOUND))],
    # --- The agent's REST API.
    "api/v1/agent/me/": [Probe("get", AGENTS), Probe("patch", AGENTS, data=lambda w: {"presence": "busy"})],
    "api/v1/agent/conversations/": [Probe("get", AGENTS)],
    "api/v1/agent/queue/": [Probe("get", AGENTS)],
    C: [Probe("get", READ_CONVERSATION)],
    C + "messages/": [Probe("get", READ_CONVERSATION), Probe("post", ACT_ON_CONVERSATION, data=body)],
    C + "pick/": [Probe("post", ACT_ON_CONVERSATION)],
    C + "wait/": [Probe("post", ACT_ON_CONVERSATION)],
    C + "resume/": [Probe("post", ACT_ON_CONVERSATION)],
    C + "end/": [Probe("post", ACT_ON_CONVERSATION)],
    C + "close/": [Probe("post", ACT_ON_CONVERSATION, data=lambda w: {"notes": "done"})],
    C + "transfer/": [Probe("post", ACT_ON_CONVERSATION, data=to_other_queue)],
    C + "attachments/": [Probe("post", ACT_ON_CONVERSATION, data=a_file, multipart=True)],
    C + "transcript/": [Probe("post", READ_CONVERSATION, data=lambda w: {"email": "someone@example.com"}, reads=True)],
    # Labels: whoever may read the conversation may label it (staff: any).
    C + "labels/": [Probe("put", READ_CONVERSATION, data=lambda w: {"labels": []}, reads=True)],
    "api/v1/agent/labels/": [Probe("get", every(UNAUTHENTICATED, agent=OK, other_agent=OK, staff=OK, superuser=OK))],
    "api/^": [Probe("get", every(NOT_FOUND)), Probe("post", every(NOT_FOUND))],
    # --- The inbox and the supervisor view (HTML; htmx requests get the status of a refusal).
    "agent/": [Probe("get", AGENTS)],
    "agent/sidebar/": [Probe("get", AGENTS)],
    "agent/presence/": [Probe("post", AGENTS, data=lambda w: {"presence": "busy"}, htmx=True)],
    P: [Probe("get", every(UNAUTHENTICATED, agent=OK, other_agent=NOT_FOUND, staff=FORBIDDEN, superuser=FORBIDDEN))],
    P + "read/": [Probe("post", ACT_ON_CONVERSATION, data=lambda w: {"seq": "1"}, htmx=True)],
    P + "transcript.txt": [Probe("get", READ_CONVERSATION)],
    P + "history/": [Probe("get", READ_CONVERSATION)],
    P + "email-transcript/": [
        Probe("post", READ_CONVERSATION, data=lambda w: {"email": "someone@example.com"}, htmx=True, reads=True)
    ],
    P + "labels/": [Probe("post", READ_CONVERSATION, data=lambda w: {"labels": []}, htmx=True, reads=True)],
    P + "<slug:action>/": [
        Probe("post", ACT_ON_CONVERSATION, action=action, data=target_other_queue, htmx=True, label=action)
        for action in ("pick", "wait", "resume", "end", "close", "transfer")
    ]
    + [Probe("post", {**AGENTS, AGENT: NOT_FOUND, OTHER_AGENT: NOT_FOUND}, action="shout", htmx=True, label="shout")],
    "agent/supervisor/": [Probe("get", SUPERVISORS)],
    "agent/supervisor/conversations/<int:pk>/<slug:action>/": [
        Probe("post", SUPERVISORS, action="assign", data=target_agent, htmx=True, label="assign"),
        Probe("post", SUPERVISORS, action="transfer", data=target_other_queue, htmx=True, label="transfer"),
        Probe("post", SUPERVISORS, action="force_close", htmx=True, label="force_close"),
    ],
    # --- The customer's pages (public: the panel authenticates in the browser).
    "widget/<slug:widget_key>/": widget_probes("get", PUBLIC, PUBLIC),
    "widget/<slug:widget_key>/demo/": widget_probes("get", PUBLIC, PUBLIC),
    # A link in an email: its signed token is the only credential, and a forged one finds nothing.
    "email/unsubscribe/<str:token>/": [Probe("get", every(NOT_FOUND)), Probe("post", every(NOT_FOUND))],
    # An attachment: its signed, short-lived URL is the only credential; a forged one finds nothing.
    "files/<str:token>/": [Probe("get", every(NOT_FOUND))],
}


def per_conversation(route: str) -> bool:
    """An agent URL naming a conversation (REST or inbox; not the supervisor's)."""
    return route.startswith((C, P))


def for_target(probe: Probe, target: str) -> Probe:
    """The probe of customer A's conversation (its agent may, the other agent may not) made for
    another conversation of the cast: the agents that may read it (GET) or act on it (the
    rest) get their outcome, every other agent ``not_found``; everyone else as for A's."""
    if probe.expect[AGENT] != OK:  # a refusal whatever the conversation (an unknown action)
        return replace(probe, target=target, label=f"{probe.label}-{target}".strip("-"))
    allowed = (READERS if probe.method == "get" or probe.reads else ACTORS)[target]
    expect = {**probe.expect, **{role: OK if role in allowed else NOT_FOUND for role in (AGENT, OTHER_AGENT)}}
    return replace(probe, expect=expect, target=target, label=f"{probe.label}-{target}".strip("-"))


# Every agent URL naming a conversation is probed with each conversation of the cast, generated
# from the probe of customer A's: a new URL cannot skip the private or the closed one.
for _route, _probes in MATRIX.items():
    if per_conversation(_route):
        _probes += [for_target(probe, target) for probe in list(_probes) for target in TARGETS if target != "a"]


# --- The URL conf ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    route: str
    name: str | None
    pattern: URLPattern


def url_routes(patterns=None, prefix: str = "", namespace: str = "") -> list[Route]:
    routes = []
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            routes += url_routes(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        else:
            name = f"{namespace}{pattern.name}" if pattern.name else None
            routes.append(Route(prefix + str(pattern.pattern), name, pattern))
    return routes


ROUTES = url_routes()
APP_ROUTES = {r.route: r for r in ROUTES if not r.route.startswith("admin/")}
ADMIN_ROUTES = [r for r in ROUTES if r.route.startswith("admin/")]


def unmatrixed(routes) -> list[str]:
    return sorted({r.route for r in routes if not r.route.startswith("admin/")} - set(MATRIX))


def test_every_url_pattern_has_a_row_in_the_matrix():
    missing = unmatrixed(ROUTES)
    assert not missing, f"add these URL patterns to the authorization matrix: {missing}"
    stale = sorted(set(MATRIX) - set(APP_ROUTES))
    assert not stale, f"the matrix names patterns the URL conf no longer has: {stale}"
    for route, probes in MATRIX.items():
        for probe in probes:
            assert set(probe.expect) == set(ROLES), f"{route}: every role needs an expected outcome"
    assert len(ADMIN_ROUTES) > 50  # the admin's pages are generated below


# --- Requests as each role ---------------------------------------------------------------------


def client_for(world: World, role: str, *, htmx: bool = False) -> Client:
    headers = {"HX-Request": "true"} if htmx else {}
    if role in CUSTOMERS:
        headers["Authorization"] = f"Bearer {world.customer_tokens[role]}"
    client = Client(headers=headers)
    if role in world.users:
        client.force_login(world.users[role])
    return client


def outcome(response) -> str:
    status = response.status_code
    assert status < 500, f"server error {status}"
    if status == 401:
        return UNAUTHENTICATED
    if status in (301, 302, 303) and urlsplit(response.get("Location", "")).path in LOGIN_PATHS:
        return UNAUTHENTICATED
    if status == 404:
        return NOT_FOUND
    if status == 403:
        code = response.json().get("code") if response.get("Content-Type", "").startswith("application/json") else None
        # A domain rule that answers 403 (customer_cannot_end) comes after authorization.
        return FORBIDDEN if code in (None, "forbidden") else OK
    return OK


def path_for(route: Route, world: World, probe: Probe) -> str:
    if route.route == "api/^":
        return "/api/v1/no-such-endpoint/"
    kwargs = {}
    for name in route.pattern.pattern.converters:
        kwargs[name] = {
            "widget_key": world.widget(probe.widget).widget_key,
            "conversation_id": world.target(probe.target).pk,
            "pk": world.target(probe.target).pk,
            "action": probe.action,
            "token": "not-a-signed-token",
        }[name]
    return reverse(route.name, kwargs=kwargs)


def request(client: Client, method: str, path: str, data: dict | None, *, json: bool):
    if method == "get":
        return client.get(path, data or {})
    if json:
        return getattr(client, method)(path, data or {}, content_type="application/json")
    return getattr(client, method)(path, data or {})


CASES = [
    pytest.param(route, index, role, id="-".join(filter(None, [route or "/", probe.method, probe.label, role])))
    for route, probes in MATRIX.items()
    for index, probe in enumerate(probes)
    for role in ROLES
]


@pytest.mark.parametrize(("route", "index", "role"), CASES)
def test_each_role_gets_its_outcome_and_nothing_it_may_not_see(route, index, role):
    world = build_world()
    probe = MATRIX[route][index]
    path = path_for(APP_ROUTES[route], world, probe)
    data = probe.data(world) if probe.data else None
    client = client_for(world, role, htmx=probe.htmx)
    response = request(client, probe.method, path, data, json=path.startswith("/api/") and not probe.multipart)
    assert outcome(response) == probe.expect[role], (
        f"{probe.method.upper()} {path} as {role}: {response.status_code} {response.content[:300]!r}"
    )
    content = b"".join(response) if response.streaming else response.content
    assert not leaks(role, content.decode("utf-8", "replace")), f"{path} shows {role} what it may not see"


# --- The admin: generated from the admin site's own URL patterns -----------------------------------


ADMIN_VALUES = {"app_label": "conversations", "object_id": "1", "url": "no-such-page"}
ADMIN_PUBLIC = {"admin/login/", "admin/logout/"}  # the way in and out, for everyone


def admin_path(route: Route, world: World) -> str:
    kwargs = {}
    for name in route.pattern.pattern.regex.groupindex:
        kwargs[name] = (
            str(ContentType.objects.get_for_model(world.conversation).pk)
            if name == "content_type_id"
            else ADMIN_VALUES.get(name, "1")
        )
    try:
        return reverse(route.name, kwargs=kwargs) if route.name else None
    except NoReverseMatch:
        return None


@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=[r.route for r in ADMIN_ROUTES])
def test_admin_pages_are_for_staff_only(route):
    world = build_world()
    path = admin_path(route, world) or "/admin/no-such-page/"
    for role in ROLES:
        response = client_for(world, role).get(path)
        got = outcome(response)
        if role in (STAFF, SUPERUSER) or route.route in ADMIN_PUBLIC:
            assert got != UNAUTHENTICATED, f"{path} as {role}: {response.status_code}"
        else:
            assert got == UNAUTHENTICATED, f"{path} as {role}: {response.status_code}"
            assert not leaks(role, response.content.decode("utf-8", "replace"))


def test_a_new_url_pattern_without_a_row_fails_the_matrix():
    from django.urls import path

    new = path("api/v1/agent/export/", lambda request: None, name="api-agent-export")
    routes = url_routes([*get_resolver().url_patterns, new])
    assert unmatrixed(routes) == ["api/v1/agent/export/"]


def test_the_matrix_covers_every_role_of_the_issue():
    assert ROLES == (ANONYMOUS, VISITOR, CUSTOMER_A, CUSTOMER_B, AGENT, OTHER_AGENT, STAFF, SUPERUSER)
