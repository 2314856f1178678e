"""English and Danish: the Danish catalogue is complete and up to date, and used."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import translation

from workstreams.models import Queue, Workstream

BASE_DIR = Path(__file__).resolve().parent.parent
PO = BASE_DIR / "locale" / "da" / "LC_MESSAGES" / "django.po"
CODE_DIRS = ("omnichannel", "workstreams", "agents", "conversations")
GETTEXT = {"_", "gettext", "gettext_lazy", "pgettext", "pgettext_lazy", "ngettext", "ngettext_lazy"}


def _unquote(block: str) -> str:
    return "".join(ast.literal_eval(part) for part in re.findall(r'"(?:[^"\\]|\\.)*"', block))


def catalogue() -> list[dict]:
    """Entries of the .po file: msgctxt, msgid, msgstr(s), flags (a small parser: no gettext needed)."""
    entries = []
    for chunk in PO.read_text(encoding="utf-8").split("\n\n"):
        lines = [line for line in chunk.splitlines() if not line.startswith("#~")]
        if not any(line.startswith("msgid") for line in lines):
            continue
        text = "\n".join(lines)
        fields = dict(re.findall(r'^(msgctxt|msgid|msgid_plural|msgstr(?:\[\d\])?) ((?:".*"\n?)+)', text, re.M))
        entries.append(
            {
                "msgctxt": _unquote(fields["msgctxt"]) if "msgctxt" in fields else None,
                "msgid": _unquote(fields["msgid"]),
                "msgstrs": [_unquote(v) for k, v in fields.items() if k.startswith("msgstr")],
                "fuzzy": "#, fuzzy" in text or ", fuzzy" in text,
            }
        )
    return [e for e in entries if e["msgid"]]  # skip the header


def test_every_danish_entry_is_translated_and_not_fuzzy():
    entries = catalogue()
    assert len(entries) > 200
    missing = [e["msgid"] for e in entries if e["fuzzy"] or not all(e["msgstrs"])]
    assert not missing, missing


def test_every_translatable_string_of_the_code_is_in_the_catalogue():
    known = {(e["msgctxt"], e["msgid"]) for e in catalogue()}
    missing = []
    for directory in CODE_DIRS:
        for path in (BASE_DIR / directory).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) in GETTEXT and node.args):
                    continue
                args = node.args
                context = None
                if node.func.id.startswith("pgettext"):
                    if not isinstance(args[0], ast.Constant):
                        continue
                    context, args = args[0].value, args[1:]
                if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
                    if (context, args[0].value) not in known:
                        missing.append(f"{path.relative_to(BASE_DIR)}: {args[0].value!r}")
    assert not missing, "run makemessages -l da and translate:\n" + "\n".join(missing)


def test_admin_labels_are_danish_in_danish():
    with translation.override("da"):
        assert str(Workstream._meta.verbose_name) == "arbejdsstrøm"
        assert str(Workstream._meta.get_field("persistent").verbose_name) == "gør chats vedvarende"
        assert str(Queue._meta.verbose_name_plural) == "køer"
    with translation.override("en"):
        assert str(Workstream._meta.verbose_name) == "workstream"


@pytest.mark.django_db
def test_the_admin_speaks_danish_to_a_danish_browser(client, superuser):
    client.force_login(superuser)
    response = client.get(reverse("admin:workstreams_workstream_changelist"), HTTP_ACCEPT_LANGUAGE="da")
    content = response.content.decode()
    assert "arbejdsstrømme" in content.lower()
    assert "Konfiguration" in content or "konfiguration" in content.lower()
