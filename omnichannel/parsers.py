"""The API's JSON parser (settings: REST_FRAMEWORK's DEFAULT_PARSER_CLASSES). Its own module:
DRF reads the setting while ``rest_framework.views`` is imported, which omnichannel.api does."""

from __future__ import annotations

import codecs
import math

from rest_framework import exceptions, parsers
from rest_framework.utils.json import load, strict_constant

from omnichannel.text import is_unicode


def finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent, refused when it is beyond a float: Python's
    decoder reads ``1e400`` as ``inf``, which no column stores and no renderer writes back."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"a number out of range: {text[:30]}")
    return value


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, except that three kinds of valid-looking JSON are parse errors (400
    ``bad_frame``), not 500s or stored nonsense: arrays or objects nested deeper than Python's
    decoder goes (``[[[[...``, a few kilobytes); strings with a lone UTF-16 surrogate
    (``"\\ud800"``), which no database stores and no renderer can write back, even inside an
    error message; and numbers beyond a float (``1e400``, read as infinity; ``NaN`` and
    ``Infinity`` are refused by DRF's strict mode already)."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        try:
            data = load(codecs.getreader(encoding)(stream), parse_constant=strict_constant, parse_float=finite_float)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None
        except ValueError as error:  # UnicodeDecodeError too
            raise exceptions.ParseError(f"JSON parse error - {error}") from None
        if not is_unicode(data):
            raise exceptions.ParseError("JSON parse error - a string holds a lone UTF-16 surrogate.")
        return data
