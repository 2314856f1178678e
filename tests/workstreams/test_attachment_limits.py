"""A workstream's attachment limits (docs/protocol.md, "Attachments"): allowed types, exactly or
by a wildcard, and a largest size within what any workstream may allow."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from tests.factories import WorkstreamFactory


def test_attachment_types_are_matched_exactly_or_by_a_wildcard(db):
    workstream = WorkstreamFactory(attachment_types="image/*, application/pdf\ntext/plain")
    assert workstream.allows_attachment_type("image/webp")
    assert workstream.allows_attachment_type("application/pdf")
    assert not workstream.allows_attachment_type("text/html")
    assert not workstream.allows_attachment_type("application/x-dosexec")
    workstream.attachment_types = ""
    assert not workstream.allows_attachment_type("image/png")


@pytest.mark.parametrize(
    ("size", "ok"), [(1023, False), (1024, True), (50 * 1024 * 1024, True), (50 * 1024 * 1024 + 1, False)]
)
def test_a_workstreams_largest_attachment_is_between_1_kb_and_50_mb(db, size, ok):
    workstream = WorkstreamFactory(attachment_max_size=size)
    errors = {}
    try:
        workstream.full_clean()
    except ValidationError as error:
        errors = error.message_dict
    assert ("attachment_max_size" not in errors) is ok
