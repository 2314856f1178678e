"""Shared by the XSS tests (tests/test_xss.py, tests/browser/test_security.py): the payloads,
and an HTML scan that finds anything of theirs that a browser would run."""

from __future__ import annotations

from html.parser import HTMLParser

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
MARKDOWN_LINK = "[x](javascript:alert(1))"
JAVASCRIPT_URL = "javascript:alert(1)"
BODIES = [SCRIPT, IMG, MARKDOWN_LINK, JAVASCRIPT_URL]
# A customer name carrying both kinds of markup (names come from the website's JWT).
NAME = f"{IMG}{SCRIPT}"
NOTES = f"Wrap-up {SCRIPT} {IMG}"


class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._script_type: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}={value!r}>")
            if name in {"href", "src", "action", "formaction", "data"} and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.found.append(f"<{tag} {name}={value!r}>")
        if tag == "img" and ("src", "x") in attrs:
            self.found.append("<img src=x>")
        if tag == "script":
            self._script_type = dict(attrs).get("type") or "text/javascript"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script_type = None

    def handle_data(self, data: str) -> None:
        # A JSON data block (json_script) may hold the payload as text: browsers never run it.
        if self._script_type not in (None, "application/json") and "alert(1)" in data:
            self.found.append(f"<script>{data.strip()[:60]}</script>")


def live_markup(html: str) -> list[str]:
    """Elements, attributes and scripts of the payloads that a browser would run."""
    scan = _Scan()
    scan.feed(html)
    scan.close()
    return scan.found
