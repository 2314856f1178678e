from __future__ import annotations

import pytest
import yaml

pytestmark = pytest.mark.django_db


def test_the_openapi_schema_lists_every_protocol_endpoint(api):
    response = api.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    paths = set(schema["paths"])
    for path in (
        "/api/v1/widget/{widget_key}/",
        "/api/v1/widget/{widget_key}/visitor/",
        "/api/v1/widget/{widget_key}/conversation/",
        "/api/v1/widget/{widget_key}/conversation/messages/",
        "/api/v1/widget/{widget_key}/conversation/end/",
        "/api/v1/agent/me/",
        "/api/v1/agent/conversations/",
        "/api/v1/agent/queue/",
        "/api/v1/agent/conversations/{conversation_id}/",
        "/api/v1/agent/conversations/{conversation_id}/messages/",
        "/api/v1/agent/conversations/{conversation_id}/pick/",
        "/api/v1/agent/conversations/{conversation_id}/wait/",
        "/api/v1/agent/conversations/{conversation_id}/resume/",
        "/api/v1/agent/conversations/{conversation_id}/end/",
        "/api/v1/agent/conversations/{conversation_id}/close/",
        "/api/v1/agent/conversations/{conversation_id}/transfer/",
    ):
        assert path in paths, path


def test_the_browsable_docs_render(api):
    response = api.get("/api/docs/")
    assert response.status_code == 200 and b"swagger" in response.content.lower()
