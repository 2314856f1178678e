"""Customers are who their token says, within one widget's scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from conversations.customer_tokens import authenticate_customer, issue_visitor_token
from conversations.errors import AuthenticationRequired, InvalidToken
from tests.factories import ChatWidgetFactory, WorkstreamFactory
from tests.keys import rsa_key

pytestmark = pytest.mark.django_db


def customer_jwt(setting, sub="c-1", **claims):
    now = datetime.now(UTC)
    payload = {"sub": sub, "iss": setting.issuer, "iat": now, "exp": now + timedelta(minutes=5), **claims}
    return jwt.encode(payload, rsa_key(), algorithm="RS256")


def test_a_visitor_token_identifies_the_same_anonymous_customer_in_its_widget(live):
    token = issue_visitor_token(live)
    first = authenticate_customer(live, token)
    assert authenticate_customer(live, token) == first
    assert first.widget == live and not first.authenticated


def test_a_visitor_token_of_another_widget_is_invalid(live):
    other = ChatWidgetFactory(workstream=live.workstream)
    with pytest.raises(InvalidToken):
        authenticate_customer(other, issue_visitor_token(live))


def test_a_widget_with_an_authentication_setting_refuses_visitor_tokens(persistent):
    with pytest.raises(AuthenticationRequired):
        issue_visitor_token(persistent)
    anonymous_twin = ChatWidgetFactory(widget_key=persistent.widget_key + "-x", workstream=WorkstreamFactory())
    token = issue_visitor_token(anonymous_twin)
    with pytest.raises((AuthenticationRequired, InvalidToken)):
        authenticate_customer(persistent, token)


def test_a_missing_token_requires_authentication(persistent):
    with pytest.raises(AuthenticationRequired):
        authenticate_customer(persistent, "")


def test_jwt_claims_create_and_update_the_customer(persistent):
    setting = persistent.authentication_setting
    token = customer_jwt(setting, name="Ada", email="ada@example.com", context={"plan": "gold"})
    customer = authenticate_customer(persistent, token)
    assert (customer.external_id, customer.display_name, customer.email) == ("c-1", "Ada", "ada@example.com")
    assert customer.context == {"plan": "gold"} and customer.authenticated
    again = authenticate_customer(persistent, customer_jwt(setting, name="Ada Lovelace"))
    assert again.pk == customer.pk and again.display_name == "Ada Lovelace"


def test_different_subs_are_different_customers(persistent):
    setting = persistent.authentication_setting
    assert authenticate_customer(persistent, customer_jwt(setting, "a")) != authenticate_customer(
        persistent, customer_jwt(setting, "b")
    )


def test_a_bad_jwt_is_invalid_token(persistent):
    with pytest.raises(InvalidToken):
        authenticate_customer(persistent, customer_jwt(persistent.authentication_setting, exp=1))


def test_a_visitor_token_of_a_widget_that_now_requires_a_jwt_is_authentication_required(live):
    from tests.factories import AuthenticationSettingFactory

    token = issue_visitor_token(live)
    live.authentication_setting = AuthenticationSettingFactory()
    live.save()
    with pytest.raises(AuthenticationRequired):
        authenticate_customer(live, token)


def test_claims_that_cannot_be_stored_are_left_out(persistent):
    token = customer_jwt(
        persistent.authentication_setting, name="Ada\x00", email="ada\x00@example.com", context={"k": "\x00"}
    )
    customer = authenticate_customer(persistent, token)
    assert (customer.display_name, customer.email, customer.context) == ("", "", {})
    customer.refresh_from_db()  # it was stored


def test_authentication_writes_the_customer_through_the_engine(persistent, live, monkeypatch):
    from conversations import services

    calls = []
    real = services.customer_upsert

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(services, "customer_upsert", spy)
    authenticate_customer(persistent, customer_jwt(persistent.authentication_setting, name="Ada"))
    authenticate_customer(live, issue_visitor_token(live))
    assert [(call.get("setting"), call.get("widget"), call.get("display_name")) for call in calls] == [
        (persistent.authentication_setting, None, "Ada"),
        (None, live, None),
    ]


def test_customer_upsert_creates_once_and_writes_only_what_changed(persistent, django_assert_num_queries):
    from conversations import services
    from conversations.models import Customer

    setting = persistent.authentication_setting
    ada = services.customer_upsert(setting=setting, external_id="c-1", display_name="Ada", email="ada@example.com")
    with django_assert_num_queries(1):  # the same claims again: one SELECT, no write
        again = services.customer_upsert(
            setting=setting, external_id="c-1", display_name="Ada", email="ada@example.com"
        )
    assert again.pk == ada.pk
    renamed = services.customer_upsert(setting=setting, external_id="c-1", display_name="Ada Lovelace")
    renamed.refresh_from_db()
    # a claim left out keeps what is stored
    assert (renamed.display_name, renamed.email) == ("Ada Lovelace", "ada@example.com")
    assert Customer.objects.filter(external_id="c-1").count() == 1
    with pytest.raises(ValueError):
        services.customer_upsert(external_id="c-1")
