from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from agents.models import Agent, ApiToken, Presence
from tests.keys import public_pem, rsa_key
from workstreams.models import (
    AuthenticationKey,
    AuthenticationSetting,
    ChatWidget,
    OperatingHours,
    OperatingInterval,
    Queue,
    Workstream,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("correct horse battery staple")


class AgentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agent

    user = factory.SubFactory(UserFactory)
    presence = Presence.AVAILABLE
    capacity = 100


class OperatingHoursFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OperatingHours

    name = factory.Sequence(lambda n: f"Hours {n}")
    time_zone = "Europe/Copenhagen"


class OperatingIntervalFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OperatingInterval


class QueueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Queue

    name = factory.Sequence(lambda n: f"Queue {n}")


class WorkstreamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workstream

    name = factory.Sequence(lambda n: f"Workstream {n}")
    queue = factory.SubFactory(QueueFactory)

    class Params:
        persistent_mode = factory.Trait(persistent=True, keep_same_agent=True)


class AuthenticationSettingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuthenticationSetting
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Site {n}")
    issuer = "https://shop.example.com"
    audience = ""

    key = factory.RelatedFactory("tests.factories.AuthenticationKeyFactory", factory_related_name="setting")


class AuthenticationKeyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuthenticationKey

    setting = factory.SubFactory(AuthenticationSettingFactory, key=None)
    kid = ""
    public_key = factory.LazyFunction(lambda: public_pem(rsa_key()))


class ChatWidgetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChatWidget

    workstream = factory.SubFactory(WorkstreamFactory)
    widget_key = factory.Sequence(lambda n: f"widget-{n}")
    title = "Chat with us"
    allowed_origins = "https://shop.example.com"
    authentication_setting = factory.Maybe(
        factory.SelfAttribute("workstream.persistent"), factory.SubFactory(AuthenticationSettingFactory), None
    )


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "conversations.Customer"

    authentication_setting = factory.SubFactory(AuthenticationSettingFactory)
    widget = None
    external_id = factory.Sequence(lambda n: f"customer-{n}")
    display_name = factory.Sequence(lambda n: f"Customer {n}")


def api_key(user, name: str = "test") -> str:
    """A new API key of ``user``: an ``agents.ApiToken`` keeps only its digest, so the key is
    known only here (each call issues another token)."""
    return ApiToken.objects.issue(user=user, name=name)[1]
