"""Every validation rule of the configuration models, as the admin form shows it."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.exceptions import ValidationError

from tests.factories import (
    AuthenticationSettingFactory,
    ChatWidgetFactory,
    OperatingHoursFactory,
    QueueFactory,
    WorkstreamFactory,
)
from tests.keys import ec_key, public_pem, rsa_key
from workstreams.models import (
    AuthenticationKey,
    AutomatedMessage,
    ChatWidget,
    DistributionMode,
    OperatingInterval,
    Workstream,
    WrapUpCapacity,
)

pytestmark = pytest.mark.django_db


def errors_of(obj) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as excinfo:
        obj.full_clean()
    return excinfo.value.message_dict


# --- Workstream -----------------------------------------------------------------------------------


def test_persistent_workstream_must_keep_the_same_agent():
    workstream = Workstream(name="P", queue=QueueFactory(), persistent=True, keep_same_agent=False)
    assert "keep_same_agent" in errors_of(workstream)


def test_persistent_workstream_must_use_push_distribution():
    workstream = Workstream(
        name="P", queue=QueueFactory(), persistent=True, keep_same_agent=True, distribution_mode=DistributionMode.PICK
    )
    assert "distribution_mode" in errors_of(workstream)


def test_valid_persistent_workstream_passes():
    Workstream(name="P", queue=QueueFactory(), persistent=True, keep_same_agent=True).full_clean()


def test_live_workstream_may_use_pick_distribution():
    Workstream(name="L", queue=QueueFactory(), distribution_mode=DistributionMode.PICK).full_clean()


def test_distribution_mode_cannot_change_after_creation():
    workstream = WorkstreamFactory(distribution_mode=DistributionMode.PUSH)
    workstream.distribution_mode = DistributionMode.PICK
    assert "distribution_mode" in errors_of(workstream)


def test_switching_to_persistent_needs_authentication_on_every_widget():
    widget = ChatWidgetFactory(widget_key="anon")
    workstream = widget.workstream
    workstream.persistent = True
    workstream.keep_same_agent = True
    errors = errors_of(workstream)
    assert "anon" in " ".join(errors["persistent"])


def test_custom_wrap_up_blocking_needs_a_duration_between_30_seconds_and_60_minutes():
    workstream = WorkstreamFactory(wrap_up_capacity=WrapUpCapacity.CUSTOM)
    for bad in (None, timedelta(seconds=29), timedelta(minutes=61)):
        workstream.wrap_up_block_duration = bad
        assert "wrap_up_block_duration" in errors_of(workstream)
    for good in (timedelta(seconds=30), timedelta(minutes=60)):
        workstream.wrap_up_block_duration = good
        workstream.full_clean()


def test_allowed_presences_must_be_known_and_not_empty():
    workstream = WorkstreamFactory()
    workstream.allowed_presences = []
    assert "allowed_presences" in errors_of(workstream)
    workstream.allowed_presences = ["available", "sleeping"]
    assert "allowed_presences" in errors_of(workstream)


def test_allowed_presences_default_to_available_and_busy():
    assert WorkstreamFactory().allowed_presences == ["available", "busy"]


@pytest.mark.parametrize(
    ("persistent", "open_timeout", "wrap_up_timeout"),
    [(False, timedelta(minutes=20), timedelta(minutes=15)), (True, timedelta(days=30), timedelta(days=1))],
)
def test_empty_timeouts_get_the_defaults_of_the_mode(persistent, open_timeout, wrap_up_timeout):
    workstream = WorkstreamFactory(persistent=persistent, keep_same_agent=persistent)
    assert workstream.open_timeout == open_timeout
    assert workstream.wrap_up_timeout == wrap_up_timeout
    assert workstream.waiting_timeout == timedelta(days=2)
    assert workstream.disconnect_grace == timedelta(minutes=3)
    assert workstream.affinity_timeout == timedelta(hours=1)
    assert workstream.wrap_up_capacity == WrapUpCapacity.ALWAYS


def test_timeouts_must_be_positive():
    workstream = WorkstreamFactory()
    workstream.affinity_timeout = timedelta(0)
    assert "affinity_timeout" in errors_of(workstream)


# --- Widgets --------------------------------------------------------------------------------------


def test_widget_of_persistent_workstream_needs_an_authentication_setting():
    workstream = WorkstreamFactory(persistent_mode=True)
    widget = ChatWidget(workstream=workstream, widget_key="w", title="t")
    assert "authentication_setting" in errors_of(widget)
    widget.authentication_setting = AuthenticationSettingFactory()
    widget.full_clean()


def test_widget_of_live_workstream_may_be_anonymous():
    ChatWidget(workstream=WorkstreamFactory(), widget_key="w", title="t").full_clean()


def test_widget_origins_must_be_origins_without_a_path():
    widget = ChatWidget(workstream=WorkstreamFactory(), widget_key="w", title="t")
    widget.allowed_origins = "https://shop.example.com\nhttp://localhost:8000\n"
    widget.full_clean()
    assert widget.origins == ["https://shop.example.com", "http://localhost:8000"]
    widget.allowed_origins = "https://shop.example.com/path"
    assert "allowed_origins" in errors_of(widget)
    widget.allowed_origins = "javascript:alert(1)"
    assert "allowed_origins" in errors_of(widget)


def test_widget_colour_must_be_hex():
    widget = ChatWidget(workstream=WorkstreamFactory(), widget_key="w", title="t", colour="blue")
    assert "colour" in errors_of(widget)


def test_widget_key_is_unique():
    ChatWidgetFactory(widget_key="same")
    widget = ChatWidget(workstream=WorkstreamFactory(), widget_key="same", title="t")
    assert "widget_key" in errors_of(widget)


# --- Authentication keys --------------------------------------------------------------------------


def test_rsa_and_p256_public_keys_are_accepted_with_their_algorithm():
    setting = AuthenticationSettingFactory(key=None)
    rsa_row = AuthenticationKey(setting=setting, kid="a", public_key=public_pem(rsa_key()))
    rsa_row.full_clean()
    assert rsa_row.algorithm == "RS256"
    ec_row = AuthenticationKey(setting=setting, kid="b", public_key=public_pem(ec_key()))
    ec_row.full_clean()
    assert ec_row.algorithm == "ES256"


@pytest.mark.parametrize(
    "pem",
    [
        "not a key",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
        public_pem(ec.generate_private_key(ec.SECP384R1())),
    ],
    ids=["garbage", "bad-base64", "rsa-1024", "p-384"],
)
def test_a_key_that_does_not_parse_or_is_unsupported_is_a_form_error(pem):
    row = AuthenticationKey(setting=AuthenticationSettingFactory(key=None), public_key=pem)
    assert "public_key" in errors_of(row)


def test_key_ids_are_unique_within_a_setting():
    setting = AuthenticationSettingFactory(key=None)
    AuthenticationKey.objects.create(setting=setting, kid="k1", public_key=public_pem(rsa_key()))
    duplicate = AuthenticationKey(setting=setting, kid="k1", public_key=public_pem(ec_key()))
    assert errors_of(duplicate)


# --- Automated messages ---------------------------------------------------------------------------


def test_unknown_placeholder_is_a_validation_error():
    message = AutomatedMessage(kind="agent_joined", language="en", text="Hi, {agent} here")
    assert "{agent}" in " ".join(errors_of(message)["text"])


@pytest.mark.parametrize("text", ["{agent_name.__class__}", "{0}", "{}", "{position!r}", "{minutes:>5}", "{oops"])
def test_malformed_or_indexed_placeholders_are_validation_errors(text):
    message = AutomatedMessage(kind="agent_joined", language="en", text=text)
    assert "text" in errors_of(message)


def test_known_placeholders_and_literal_braces_are_accepted_and_rendered():
    message = AutomatedMessage(
        workstream=WorkstreamFactory(),
        kind="queue_position",
        language="en",
        text="{{#{position}}} in {queue_name}, ~{minutes} min, {agent_name}",
    )
    message.full_clean()
    assert message.render(position=2, queue_name="Q", minutes=3, agent_name="Ann") == "{#2} in Q, ~3 min, Ann"


def test_global_defaults_ship_for_every_kind_in_english_and_danish():
    from workstreams.models import AutomatedMessageKind

    defaults = set(AutomatedMessage.objects.filter(workstream=None).values_list("kind", "language"))
    assert defaults == {(kind, lang) for kind in AutomatedMessageKind.values for lang in ("en", "da")}
    for message in AutomatedMessage.objects.filter(workstream=None):
        message.full_clean()


def test_a_workstream_overrides_a_default_once_per_kind_and_language():
    workstream = WorkstreamFactory()
    AutomatedMessage.objects.create(workstream=workstream, kind="agent_joined", language="en", text="Hej")
    duplicate = AutomatedMessage(workstream=workstream, kind="agent_joined", language="en", text="Again")
    assert errors_of(duplicate)


# --- Operating hours ------------------------------------------------------------------------------


def test_interval_must_close_after_it_opens_unless_at_midnight():
    hours = OperatingHoursFactory()
    bad = OperatingInterval(hours=hours, weekday=0, opens_at=time(17), closes_at=time(9))
    assert "closes_at" in errors_of(bad)
    OperatingInterval(hours=hours, weekday=0, opens_at=time(17), closes_at=time(0)).full_clean()
