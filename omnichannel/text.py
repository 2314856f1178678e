"""Text that can be stored and sent on: shared by the REST parser and the sockets."""

from __future__ import annotations

import json
from typing import Any


def is_unicode(value: Any) -> bool:
    """False when a string anywhere in ``value`` (keys included) holds a lone UTF-16 surrogate,
    as JSON's ``"\\ud800"`` escape decodes to: valid JSON, but not text any database stores or
    any encoder writes, so it would fail later, as a 500 or a dropped socket."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
