"""The engine's surface reads one way (STYLE.md, docs/architecture.md): every service is named
``<entity>_<verb>`` (an ``a`` in front for the event loop's executor) and takes keyword
arguments only, so a call site says what each value is."""

import inspect
import re

from conversations import services

# Input validators the adapters share with the engine: not services, one positional value each.
VALIDATORS = {"clean_body", "clean_client_id", "clean_internal", "clean_prechat"}
ENTITIES = ("conversation", "customer", "agent", "queue", "queues", "attachments")
SERVICE_NAME = re.compile(rf"^a?(?:{'|'.join(ENTITIES)})_[a-z]+(?:_[a-z]+)*$")


def _services():
    return {
        name: value
        for name, value in vars(services).items()
        if name in services.__all__ and inspect.isfunction(value) and name not in VALIDATORS
    }


def test_the_engine_exports_its_services():
    assert {"customer_message_send", "conversation_close", "queues_drain", "agent_presence_set"} <= set(_services())


def test_every_service_is_named_entity_then_verb():
    misnamed = sorted(name for name in _services() if not SERVICE_NAME.match(name))
    assert not misnamed, f"services not named <entity>_<verb>: {misnamed}"


def test_every_service_takes_keyword_arguments_only():
    positional = {
        name: [p.name for p in inspect.signature(func).parameters.values() if p.kind is not p.KEYWORD_ONLY]
        for name, func in _services().items()
    }
    positional = {name: params for name, params in positional.items() if params}
    assert not positional, f"services with positional parameters: {positional}"
