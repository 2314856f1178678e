"""The admin is complete: every page of every model renders, and validation shows in forms."""

from __future__ import annotations

import io
import re
from datetime import time

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from conversations import services
from conversations.models import Label, OutboundEmail
from tests.factories import (
    AgentFactory,
    AuthenticationSettingFactory,
    ChatWidgetFactory,
    CustomerFactory,
    OperatingHoursFactory,
    OperatingIntervalFactory,
    QueueFactory,
    WorkstreamFactory,
)
from workstreams.models import AutomatedMessage, ChatWidget, ClosedDate, Workstream

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def populated(superuser):
    """One object of every registered model, so every change page has something to show."""
    Group.objects.create(name="Supervisors")
    hours = OperatingHoursFactory()
    OperatingIntervalFactory(hours=hours, weekday=0, opens_at=time(9), closes_at=time(17))
    ClosedDate.objects.create(hours=hours, date="2026-12-24", label="Christmas Eve")
    agent = AgentFactory()
    queue = QueueFactory(operating_hours=hours)
    queue.agents.add(agent)
    widget = ChatWidgetFactory(workstream=WorkstreamFactory(queue=queue, persistent_mode=True))
    customer = CustomerFactory(authentication_setting=widget.authentication_setting, display_name="Carol")
    conversation = services.customer_message_send(
        widget=widget, customer=customer, body="<script>alert(1)</script>"
    ).conversation
    label = Label.objects.create(name="billing", colour="#2563eb")
    services.conversation_labels_set(conversation_id=conversation.pk, user=superuser, labels=[label.name])
    # The outbox of emails (its change page previews the HTML in a sandboxed frame).
    services.conversation_transcript_email(conversation_id=conversation.pk, to="carol@example.com")
    call_command("agent_token", agent.user.username, stdout=io.StringIO())
    # django-axes' records of sign-ins (its admin pages are the lockout console).
    who = {"username": "mallory", "ip_address": "203.0.113.9", "user_agent": "curl", "path_info": "/accounts/login/"}
    AccessAttempt.objects.create(**who, http_accept="*/*", get_data="", post_data="", failures_since_start=3)
    AccessFailureLog.objects.create(**who, http_accept="*/*", locked_out=False)
    AccessLog.objects.create(**who, http_accept="*/*")


@pytest.mark.usefixtures("populated")
@pytest.mark.parametrize("language", ["en", "da"])
def test_every_admin_page_renders_for_a_superuser(admin_client, language):
    """In both languages: a Danish text with a broken placeholder fails only in Danish."""
    admin_client.defaults["HTTP_ACCEPT_LANGUAGE"] = language
    index = admin_client.get(reverse("admin:index"))
    assert index.status_code == 200 and f'lang="{language}"' in index.content.decode()
    checked = 0
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        prefix = f"admin:{opts.app_label}_{opts.model_name}"
        response = admin_client.get(reverse(f"{prefix}_changelist"))
        assert response.status_code == 200, prefix
        checked += 1
        request = response.wsgi_request
        response = admin_client.get(reverse(f"{prefix}_add"))
        # Read-only models (the history written by the engine) have no add page.
        assert response.status_code == (200 if model_admin.has_add_permission(request) else 403), prefix
        checked += 1
        obj = model._default_manager.first()
        assert obj is not None, f"no {opts.model_name} to open"
        for url in (reverse(f"{prefix}_change", args=[obj.pk]), reverse(f"{prefix}_history", args=[obj.pk])):
            response = admin_client.get(url)
            assert response.status_code == 200, url
            checked += 1
    assert checked >= 4 * 8


def test_the_workstream_page_is_grouped_like_the_product_and_explains_every_setting(admin_client):
    response = admin_client.get(reverse("admin:workstreams_workstream_add"))
    form = response.context["adminform"]
    names = [str(fieldset.name) for fieldset in form]
    assert names[:3] == ["Basics", "Work distribution", "Persistent chat"]
    assert "Timeouts" in names
    unexplained = [name for name, field in form.form.fields.items() if name != "name" and not field.help_text]
    assert not unexplained, unexplained
    assert AutomatedMessage in [inline.formset.model for inline in response.context["inline_admin_formsets"]]


@pytest.mark.usefixtures("populated")
def test_changelists_search_and_filter(admin_client):
    for name in ("workstream", "queue", "chatwidget", "automatedmessage", "agent", "operatinghours"):
        url = reverse(f"admin:{'agents' if name == 'agent' else 'workstreams'}_{name}_changelist")
        assert admin_client.get(url, {"q": "x"}).status_code == 200
    url = reverse("admin:workstreams_automatedmessage_changelist")
    response = admin_client.get(url, {"scope": "default"})
    assert response.status_code == 200
    assert response.context["cl"].result_count == AutomatedMessage.objects.filter(workstream=None).count()


def test_admin_form_shows_the_persistent_chat_rules(admin_client):
    queue = QueueFactory()
    response = admin_client.post(
        reverse("admin:workstreams_workstream_add"),
        {
            "name": "Support",
            "queue": queue.pk,
            "persistent": "on",
            "distribution_mode": "pick",
            "assignment_method": "highest_capacity",
            "capacity_units": 25,
            "allowed_presences": ["available", "busy"],
            "waiting_timeout": "2 00:00:00",
            "disconnect_grace": "00:03:00",
            "wrap_up_capacity": "always",
            "affinity_timeout": "01:00:00",
            "attachment_max_size": 10485760,
            "automated_messages-TOTAL_FORMS": 0,
            "automated_messages-INITIAL_FORMS": 0,
            "quick_replies-TOTAL_FORMS": 0,
            "quick_replies-INITIAL_FORMS": 0,
            "prechat_fields-TOTAL_FORMS": 0,
            "prechat_fields-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "keep_same_agent" in errors and "distribution_mode" in errors
    assert not Workstream.objects.filter(name="Support").exists()


def test_admin_adds_a_live_workstream_with_mode_defaults(admin_client):
    queue = QueueFactory()
    response = admin_client.post(
        reverse("admin:workstreams_workstream_add"),
        {
            "name": "Sales",
            "queue": queue.pk,
            "distribution_mode": "push",
            "assignment_method": "round_robin",
            "capacity_units": 30,
            "allowed_presences": ["available"],
            "waiting_timeout": "2 00:00:00",
            "disconnect_grace": "00:03:00",
            "wrap_up_capacity": "always",
            "affinity_timeout": "01:00:00",
            "attachment_max_size": 10485760,
            "automated_messages-TOTAL_FORMS": 1,
            "automated_messages-INITIAL_FORMS": 0,
            "quick_replies-TOTAL_FORMS": 0,
            "quick_replies-INITIAL_FORMS": 0,
            "prechat_fields-TOTAL_FORMS": 0,
            "prechat_fields-INITIAL_FORMS": 0,
            "automated_messages-0-kind": "agent_joined",
            "automated_messages-0-language": "en",
            "automated_messages-0-text": "Hi, I am {agent_name} from sales.",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    workstream = Workstream.objects.get(name="Sales")
    assert workstream.allowed_presences == ["available"]
    assert str(workstream.open_timeout) == "0:20:00"
    assert workstream.automated_messages.get().text == "Hi, I am {agent_name} from sales."


def test_distribution_mode_is_read_only_after_creation(admin_client):
    workstream = WorkstreamFactory()
    response = admin_client.get(reverse("admin:workstreams_workstream_change", args=[workstream.pk]))
    assert "distribution_mode" not in response.context["adminform"].form.fields


def test_widget_admin_refuses_a_persistent_widget_without_authentication(admin_client):
    workstream = WorkstreamFactory(persistent_mode=True)
    response = admin_client.post(
        reverse("admin:workstreams_chatwidget_add"),
        {"workstream": workstream.pk, "widget_key": "w", "title": "Chat", "colour": "#112233", "language": "en"},
    )
    assert response.status_code == 200
    assert "authentication_setting" in response.context["adminform"].form.errors
    assert not ChatWidget.objects.exists()


def test_widget_admin_shows_the_embed_snippet(admin_client, settings):
    settings.SITE_URL = "https://chat.example.com"
    widget = ChatWidgetFactory(widget_key="shop")
    response = admin_client.get(reverse("admin:workstreams_chatwidget_change", args=[widget.pk]))
    content = response.content.decode()
    assert "https://chat.example.com/static/omnichannel-widget.js" in content
    assert "data-widget-key=&quot;shop&quot;" in content  # escaped inside the textarea


def authentication_setting_form(public_key: str, **fields: str) -> dict:
    """The admin's add form of an authentication setting "Shop" with one key."""
    return {
        "name": "Shop",
        "issuer": "https://shop.example.com",
        "keys-TOTAL_FORMS": 1,
        "keys-INITIAL_FORMS": 0,
        "keys-MIN_NUM_FORMS": 1,
        "keys-0-kid": "k1",
        "keys-0-public_key": public_key,
        **fields,
    }


def test_authentication_admin_reports_a_key_that_does_not_parse(admin_client):
    response = admin_client.post(
        reverse("admin:workstreams_authenticationsetting_add"),
        authentication_setting_form("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----"),
    )
    assert response.status_code == 200
    assert "public_key" in response.context["inline_admin_formsets"][0].formset.forms[0].errors


def test_agent_admin_edits_queue_membership(admin_client):
    agent = AgentFactory()
    queue = QueueFactory()
    response = admin_client.post(
        reverse("admin:agents_agent_change", args=[agent.pk]),
        {"user": agent.user.pk, "presence": "busy", "capacity": 80, "queues": [queue.pk]},
    )
    assert response.status_code == 302
    agent.refresh_from_db()
    assert (agent.presence, agent.capacity, list(agent.queues.all())) == ("busy", 80, [queue])


def test_user_admin_shows_the_agent_profile_inline(admin_client):
    agent = AgentFactory()
    response = admin_client.get(reverse("admin:auth_user_change", args=[agent.user.pk]))
    assert any(f.formset.model.__name__ == "Agent" for f in response.context["inline_admin_formsets"])


@pytest.mark.parametrize(("hours", "saved"), [("2", True), ("", False), ("721", False)])
def test_authentication_setting_admin_sets_the_maximum_token_lifetime(admin_client, hours, saved):
    from datetime import timedelta

    from tests.keys import public_pem, rsa_key
    from workstreams.models import AuthenticationSetting

    response = admin_client.post(
        reverse("admin:workstreams_authenticationsetting_add"),
        authentication_setting_form(
            public_pem(rsa_key()),
            # days, hours, minutes, seconds (DurationPartsWidget); 721 hours is over 30 days
            **{f"max_token_lifetime_{i}": part for i, part in enumerate(["", hours, "", ""])},
        ),
    )
    if saved:
        assert response.status_code == 302
        assert AuthenticationSetting.objects.get(name="Shop").max_token_lifetime == timedelta(hours=2)
    else:
        assert response.status_code == 200
        assert "max_token_lifetime" in response.context["adminform"].form.errors


def test_authentication_setting_admin_lists_key_count(admin_client):
    AuthenticationSettingFactory(name="Shop")
    response = admin_client.get(reverse("admin:workstreams_authenticationsetting_changelist"))
    assert "Shop" in response.content.decode()


def _workstream_post(queue, **extra):
    data = {
        "name": "Parts",
        "queue": queue.pk,
        "distribution_mode": "push",
        "assignment_method": "highest_capacity",
        "capacity_units": 25,
        "allowed_presences": ["available", "busy"],
        "waiting_timeout": "2 00:00:00",
        "disconnect_grace": "00:03:00",
        "wrap_up_capacity": "always",
        "affinity_timeout": "01:00:00",
        "attachment_max_size": 10485760,
        "automated_messages-TOTAL_FORMS": 0,
        "automated_messages-INITIAL_FORMS": 0,
        "quick_replies-TOTAL_FORMS": 0,
        "quick_replies-INITIAL_FORMS": 0,
        "prechat_fields-TOTAL_FORMS": 0,
        "prechat_fields-INITIAL_FORMS": 0,
    }
    data.update(extra)
    return data


def test_durations_are_entered_as_days_hours_minutes_and_seconds(admin_client):
    from datetime import timedelta

    data = _workstream_post(QueueFactory())
    del data["waiting_timeout"]
    data.update({"waiting_timeout_0": "3", "waiting_timeout_1": "", "waiting_timeout_2": "90", "waiting_timeout_3": ""})
    response = admin_client.post(reverse("admin:workstreams_workstream_add"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Workstream.objects.get(name="Parts").waiting_timeout == timedelta(days=3, minutes=90)


def test_the_add_page_ticks_available_and_busy_by_default(admin_client):
    response = admin_client.get(reverse("admin:workstreams_workstream_add"))
    field = response.context["adminform"].form["allowed_presences"]
    assert list(field.value()) == ["available", "busy"]


def test_duplicate_override_rows_are_a_form_error_not_a_server_error(admin_client):
    data = _workstream_post(
        QueueFactory(),
        **{
            "automated_messages-TOTAL_FORMS": 2,
            "automated_messages-0-kind": "agent_joined",
            "automated_messages-0-language": "en",
            "automated_messages-0-text": "One",
            "automated_messages-1-kind": "agent_joined",
            "automated_messages-1-language": "en",
            "automated_messages-1-text": "Two",
        },
    )
    response = admin_client.post(reverse("admin:workstreams_workstream_add"), data)
    assert response.status_code == 200
    assert not Workstream.objects.filter(name="Parts").exists()


def test_duplicate_key_ids_are_a_form_error_not_a_server_error(admin_client):
    from tests.keys import ec_key, public_pem, rsa_key

    response = admin_client.post(
        reverse("admin:workstreams_authenticationsetting_add"),
        {
            "name": "Shop",
            "issuer": "https://shop.example.com",
            "keys-TOTAL_FORMS": 2,
            "keys-INITIAL_FORMS": 0,
            "keys-MIN_NUM_FORMS": 1,
            "keys-0-kid": "k1",
            "keys-0-public_key": public_pem(rsa_key()),
            "keys-1-kid": "k1",
            "keys-1-public_key": public_pem(ec_key()),
        },
    )
    assert response.status_code == 200


def test_a_duplicate_global_default_explains_itself(admin_client):
    response = admin_client.post(
        reverse("admin:workstreams_automatedmessage_add"),
        {"kind": "agent_joined", "language": "en", "text": "Hi"},
    )
    assert response.status_code == 200
    assert "already a global default" in response.content.decode()


def test_the_admin_index_lists_the_configuration_first(admin_client):
    apps = [app["app_label"] for app in admin_client.get(reverse("admin:index")).context["app_list"]]
    assert apps[:3] == ["workstreams", "agents", "conversations"]


def test_admin_adds_quick_replies_to_a_workstream(admin_client):
    from workstreams.models import QuickReply

    data = _workstream_post(
        QueueFactory(),
        **{
            "quick_replies-TOTAL_FORMS": 2,
            "quick_replies-0-position": 1,
            "quick_replies-0-title": "Greeting",
            "quick_replies-0-body": "Hi! How can I help?",
            "quick_replies-1-position": 2,
            "quick_replies-1-title": "Greeting",
            "quick_replies-1-body": "Twice",
        },
    )
    response = admin_client.post(reverse("admin:workstreams_workstream_add"), data)
    assert response.status_code == 200  # the same title twice in one workstream is refused
    data["quick_replies-1-title"] = "Goodbye"
    response = admin_client.post(reverse("admin:workstreams_workstream_add"), data)
    assert response.status_code == 302
    assert list(QuickReply.objects.values_list("title", "body")) == [
        ("Greeting", "Hi! How can I help?"),
        ("Goodbye", "Twice"),
    ]


def _changelist_parameters(client, model, model_admin) -> tuple[str, list[str]]:
    """A changelist's URL and every query parameter it reads: its list filters' (the ones
    shown), a search, ordering and page, and a lookup on each of the model's own fields."""
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    changelist = client.get(url).context["cl"]
    parameters = ["q", "o", "p", "e", "_popup", "_to_field"]
    for spec in changelist.filter_specs:
        parameters += spec.expected_parameters()
    parameters += [field.name for field in opts.concrete_fields if not field.is_relation]
    return url, parameters


@pytest.mark.usefixtures("populated")
def test_a_null_character_in_any_admin_query_string_is_a_400_not_a_500(admin_client, superuser):
    """Issue #19: ``?status__exact=%00`` was a 500 on PostgreSQL (a text parameter with NUL).
    Every changelist of the registry, so a new ModelAdmin or filter cannot escape; on SQLite,
    which stores NUL, the old answers were 200 or a redirect, also not the 400 asked for."""
    client = Client(raise_request_exception=False)
    client.force_login(superuser)
    answers = {}
    for model, model_admin in admin.site._registry.items():
        url, parameters = _changelist_parameters(admin_client, model, model_admin)
        for parameter in parameters:
            answers[f"{url}?{parameter}=%00"] = client.get(url, {parameter: "\x00"}).status_code
        answers[f"{url}?%00=1"] = client.get(url, {"\x00": "1"}).status_code
    autocomplete = {"term": "\x00", "app_label": "workstreams", "model_name": "workstream", "field_name": "queue"}
    answers["autocomplete"] = client.get(reverse("admin:autocomplete"), autocomplete).status_code
    assert len(answers) > 8 * len(admin.site._registry)
    assert {query: status for query, status in answers.items() if status != 400} == {}


@pytest.mark.usefixtures("populated")
def test_an_admin_action_on_selected_ids_that_are_no_ids_is_a_400_not_a_500(superuser):
    client = Client(raise_request_exception=False)
    client.force_login(superuser)
    answers = {}
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        actions = model_admin.get_actions(client.get(url).wsgi_request)
        if not actions:
            continue
        for selected in ("abc", "\x00", "9" * 23):
            data = {"action": next(iter(actions)), ACTION_CHECKBOX_NAME: [selected], "index": "0"}
            answers[f"{url} {selected[:5]!r}"] = client.post(url, data).status_code
    assert len(answers) >= 3 * 5
    assert {action: status for action, status in answers.items() if status != 400} == {}


def _inline_code(html: str) -> list[str]:
    """What a strict Content-Security-Policy refuses: inline scripts (a JSON data block is no
    script), event handler and style attributes, ``javascript:`` URLs."""
    found = [tag for tag in re.findall(r"<script\b[^>]*>", html) if "src=" not in tag and "application/json" not in tag]
    found += re.findall(r"<[a-zA-Z][^>]*\s(on[a-z]+|style)\s*=", html)
    found += re.findall(r"""(?:href|src|action)\s*=\s*["']?\s*javascript:""", html, re.I)
    return found


@pytest.mark.usefixtures("populated")
def test_no_admin_page_has_inline_code_the_policy_would_refuse(admin_client):
    """Issue #19: the widget page's Copy button had an inline ``onclick`` (built in Python, so
    the template check of tests/test_csp.py missed it). Every changelist, add and change page."""
    offenders = []
    for model in admin.site._registry:
        opts = model._meta
        prefix = f"admin:{opts.app_label}_{opts.model_name}"
        urls = [reverse(f"{prefix}_changelist"), reverse(f"{prefix}_add")]
        urls += [reverse(f"{prefix}_change", args=[obj.pk]) for obj in model._default_manager.all()[:3]]
        for url in urls:
            response = admin_client.get(url)
            if response.status_code == 200:
                offenders += [f"{url}: {code}" for code in _inline_code(response.content.decode())]
    assert offenders == []


@pytest.mark.usefixtures("populated")
def test_an_emails_html_is_previewed_in_a_sandboxed_frame_under_a_policy_of_its_own(admin_client):
    email = OutboundEmail.objects.get()
    page = admin_client.get(reverse("admin:conversations_outboundemail_change", args=[email.pk])).content.decode()
    preview_url = reverse("admin:conversations_outboundemail_preview", args=[email.pk])
    assert f'<iframe sandbox="" src="{preview_url}"' in page
    preview = admin_client.get(preview_url)
    assert preview.status_code == 200 and preview.content.decode() == email.body_html
    policy = preview["Content-Security-Policy"]
    assert "script-src 'none'" in policy and "sandbox" in policy and "frame-ancestors 'self'" in policy
    assert preview["X-Frame-Options"] == "SAMEORIGIN"
