"""The API's JSON parser (settings: REST_FRAMEWORK's DEFAULT_PARSER_CLASSES). Its own module:
DRF reads the setting while ``rest_framework.views`` is imported, which omnichannel.api does."""

from __future__ import annotations

from rest_framework import exceptions, parsers

from omnichannel.text import is_unicode


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, except that two kinds of valid-looking JSON are parse errors (400
    ``bad_frame``), not 500s: arrays or objects nested deeper than Python's decoder goes
    (``[[[[...``, a few kilobytes), and strings with a lone UTF-16 surrogate (``"\\ud800"``),
    which no database stores and no renderer can write back, even inside an error message."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None
        if not is_unicode(data):
            raise exceptions.ParseError("JSON parse error - a string holds a lone UTF-16 surrogate.")
        return data
